"""Time the reference sweep (24 separate contrastive-search loops) against the fast batched sweep.

Both run in this process, on the same texts and model, so the ratio is independent of the machine.
Prints seconds per document for the reference, the fast sweep one document at a time, and the fast sweep in
batch mode (Engine.sweep_many: several documents share each forward), the speedups, whether the candidates
are identical, and peak RSS. The reference is slow, so it runs on the first --reference-docs documents only.
Usage: python bench/bench_sweep.py [--model shipped|base|DIR] [--docs 4] [--reference-docs 2] [--tokens 300]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch

DEV = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "dev" / "dev100.jsonl"


def texts_of_about(tokenizer, n_docs: int, n_tokens: int) -> list[str]:
    """The first dev responses with at least n_tokens tokens, cut to exactly n_tokens."""
    out = []
    for line in DEV.open():
        response = json.loads(line)["response"]
        ids = tokenizer(response, add_special_tokens=False)["input_ids"]
        if len(ids) >= n_tokens:
            out.append(tokenizer.decode(ids[:n_tokens]))
        if len(out) == n_docs:
            break
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--docs", type=int, default=4)
    parser.add_argument("--reference-docs", type=int, default=2)
    parser.add_argument("--batch-docs", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args()

    from revprompt.core.engine import Engine

    # The whole ~N-token text is decoded (not cut to the model's trained window), as the issue measures.
    fast = Engine.load(
        args.model,
        dtype=args.dtype,
        max_new_tokens=args.max_new_tokens,
        method="fast",
        max_input_tokens=args.tokens + 8,
    )
    ref = Engine(fast.model, fast.tokenizer, max_new_tokens=args.max_new_tokens, method="reference")
    texts = texts_of_about(fast.tokenizer, args.docs, args.tokens)
    print(
        f"model={fast.model_name} dtype={args.dtype} docs={len(texts)} tokens/doc={args.tokens} "
        f"configs={len(fast.configs)} threads={torch.get_num_threads()}"
    )
    fast.sweep(texts[0][:200])  # warm-up: first-call allocations are not what a batch pays

    # The fast runs come first: the long reference runs afterwards cannot heat or fragment the machine for them
    # in a way the fast path would pay for (on a shared 2-core VM that was visible).
    t_fast, t_ref, identical, singles = [], [], True, []
    for i, text in enumerate(texts):
        start = time.perf_counter()
        b = fast.sweep(text)
        t_fast.append(time.perf_counter() - start)
        singles.append(b)
        print(
            f"doc {i}: fast {t_fast[-1]:.2f}s, {len(b.candidates)} candidates, "
            f"longest {max(len(c.token_ids) for c in b.candidates)} tokens",
            flush=True,
        )

    start = time.perf_counter()
    batched = dict(fast.sweep_many(texts, batch_docs=args.batch_docs))
    t_batch = (time.perf_counter() - start) / len(texts)
    batch_same = all(
        [c.token_ids for c in batched[i].candidates] == [c.token_ids for c in singles[i].candidates]
        for i in range(len(texts))
    )
    print(f"batch mode: {t_batch:.2f} s/doc", flush=True)

    # Batch mode on the reference's own documents, so both sides of the ratio time the same texts: the mean over
    # all documents depends on which documents happen to be long (a 49-token candidate doubles a sweep). Timed
    # here, before the reference runs, like every fast run: measured after minutes of reference decoding the same
    # batch took 6.5 s/doc where it had just taken 5.3 (bench/RESULTS.md, session 19).
    n_ref = min(args.reference_docs, len(texts))
    if n_ref == len(texts):
        same_docs, t_batch_ref = batched, t_batch
    elif n_ref:
        start = time.perf_counter()
        same_docs = dict(fast.sweep_many(texts[:n_ref], batch_docs=args.batch_docs))
        t_batch_ref = (time.perf_counter() - start) / n_ref

    for i, text in enumerate(texts[:n_ref]):
        start = time.perf_counter()
        a = ref.sweep(text)
        t_ref.append(time.perf_counter() - start)
        same = [c.token_ids for c in a.candidates] == [c.token_ids for c in singles[i].candidates]
        identical &= same
        print(f"doc {i}: reference {t_ref[-1]:.2f}s; identical={same}", flush=True)

    mean_fast = sum(t_fast) / len(t_fast)
    mean_fast_ref_docs = sum(t_fast[: len(t_ref)]) / max(len(t_ref), 1)
    print(f"fast sweep, one doc at a time: {mean_fast:.2f} s/doc")
    print(
        f"fast sweep, batch mode ({args.batch_docs} docs/forward): {t_batch:.2f} s/doc (identical to one at a time: {'yes' if batch_same else 'no'})"
    )
    if t_ref:
        mean_ref = sum(t_ref) / len(t_ref)
        print(f"reference sweep: {mean_ref:.2f} s/doc (on {len(t_ref)} docs)")
        print(f"speedup, one doc at a time: {mean_ref / mean_fast_ref_docs:.1f}x (on the same {len(t_ref)} docs)")
        identical &= all(
            [c.token_ids for c in same_docs[i].candidates] == [c.token_ids for c in singles[i].candidates]
            for i in range(len(t_ref))
        )
        print(
            f"speedup, batch mode: {mean_ref / t_batch_ref:.1f}x (on the same {len(t_ref)} docs, batched together: "
            f"{t_batch_ref:.2f} s/doc; the batch mean over all {len(texts)} docs is {t_batch:.2f} s/doc)"
        )
        print(f"candidates identical (reference vs fast): {'yes' if identical else 'no'}")
    print(f"peak RSS: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
