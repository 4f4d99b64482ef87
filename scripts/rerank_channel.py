"""Study: re-rank an eval's candidates by how well each one predicts the response (a noisy-channel score).

Perplexity ranks candidates by P(prompt | response) under the fine-tuned model, which favours short generic
prompts the model writes easily. The channel direction asks the other question: under the *base* model (no
adapter, so it knows nothing of our training pairs and nothing of the metric's embedding model), how likely is
the response's opening after the candidate prompt? A prompt that names the response's topic makes its first
tokens cheaper; a generic one does not. Since log P(response) is the same for every candidate of a document,
ranking by log P(response | prompt) is ranking by the pointwise mutual information of prompt and response.

Reads the details of `revprompt eval ... --top 24 --details FILE` (candidates with their perplexity and their
metrics already computed) and the dev file; writes one row per document with each candidate's channel score,
then prints top-1 cosine / token-set F1 for score = -log ppl + lam * channel, lam chosen on one half of the
documents and reported on the other (two-fold), so the number is not tuned on what it reports.

    python scripts/rerank_channel.py runs/s12-dev600-top24.jsonl ../shared/data/dev/dev600.jsonl \
        -o runs/channel-dev600.jsonl --top 5 --response-tokens 64
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path


def channel_scores(model, tok, prompts: list[str], response: str, response_tokens: int) -> tuple[list[float], float]:
    """Mean log P(first `response_tokens` tokens of response | prompt) per prompt, and the same with no prompt."""
    import torch

    r_ids = tok(response, add_special_tokens=False)["input_ids"][:response_tokens]
    rows = []
    for p in [None, *prompts]:
        head = [tok.bos_token_id] + (
            [] if p is None else tok(p.strip() + "\n\n", add_special_tokens=False)["input_ids"]
        )
        rows.append((head, r_ids))
    width = max(len(h) + len(r) for h, r in rows)
    ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (h, r) in enumerate(rows):
        seq = h + r
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
    with torch.inference_mode():
        hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
        out = []
        for i, (h, r) in enumerate(rows):
            # only the positions that predict response tokens go through the 262K-row head
            pos = torch.arange(len(h) - 1, len(h) - 1 + len(r))
            logits = model.lm_head(hidden[i, pos]).float()
            if getattr(model.config, "final_logit_softcapping", None):
                cap = model.config.final_logit_softcapping
                logits = torch.tanh(logits / cap) * cap
            lp = torch.log_softmax(logits, -1).gather(1, torch.tensor(r).unsqueeze(1)).squeeze(1)
            out.append(float(lp.mean()))
    return out[1:], out[0]


def pick(row: dict, lam: float) -> dict:
    cands = row["candidates"]
    return max(cands, key=lambda c: -math.log(c["perplexity"]) + lam * c["channel"])


def evaluate(rows: list[dict], lam: float) -> tuple[float, float]:
    chosen = [pick(r, lam) for r in rows]
    return (sum(c["cosine"] for c in chosen) / len(chosen), sum(c["token_f1"] for c in chosen) / len(chosen))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("details", type=Path)
    ap.add_argument("dev", type=Path)
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--top", type=int, default=5, help="score only the first N candidates by perplexity")
    ap.add_argument("--response-tokens", type=int, default=64)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument(
        "--model-dir", type=Path, help="a model folder to score with (default: the packaged base, no adapter)"
    )
    args = ap.parse_args(argv)

    dev = [json.loads(line) for line in args.dev.open()]
    details = [json.loads(line) for line in args.details.open()]
    done = {}
    if args.out.exists():
        done = {r["index"]: r for r in map(json.loads, args.out.open())}
    todo = [d for d in details if d["index"] not in done][: args.limit or None]
    if todo:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from revprompt.core.model import base_model_dir

        torch.set_num_threads(max(1, torch.get_num_threads()))
        base = args.model_dir or base_model_dir()
        tok = AutoTokenizer.from_pretrained(base)
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
        started = time.perf_counter()
        with args.out.open("a") as f:
            for n, d in enumerate(todo, 1):
                cands = sorted(d["candidates"], key=lambda c: c["rank"])[: args.top]
                scores, uncond = channel_scores(
                    model, tok, [c["prompt"] for c in cands], dev[d["index"]]["response"], args.response_tokens
                )
                row = {"index": d["index"], "unconditional": uncond, "candidates": []}
                for c, s in zip(cands, scores):
                    row["candidates"].append({k: c[k] for k in ("rank", "prompt", "perplexity", "cosine", "token_f1")})
                    row["candidates"][-1]["channel"] = s
                f.write(json.dumps(row) + "\n")
                f.flush()
                done[d["index"]] = row
                if n % 20 == 0:
                    rate = n / (time.perf_counter() - started) * 60
                    print(f"{n}/{len(todo)} documents, {rate:.1f}/min", file=sys.stderr)

    rows = [done[i] for i in sorted(done)]
    halves = (rows[0::2], rows[1::2])
    grid = [0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0]
    print(f"{len(rows)} documents, top {args.top} candidates, {args.response_tokens} response tokens")
    print("lam   top-1 cosine / F1 (all)")
    for lam in grid:
        cos, f1 = evaluate(rows, lam)
        print(f"{lam:<5} {cos:.4f} / {f1:.4f}")
    held = []
    for fit, test in (halves, halves[::-1]):
        best = max(grid, key=lambda lam: sum(evaluate(fit, lam)))
        held.append((best, *evaluate(test, best), len(test)))
    n = sum(h[3] for h in held)
    cos = sum(h[1] * h[3] for h in held) / n
    f1 = sum(h[2] * h[3] for h in held) / n
    print(f"two-fold: lam chosen {[h[0] for h in held]}, held-out top-1 {cos:.4f} / {f1:.4f}")
    print(f"perplexity alone: {evaluate(rows, 0.0)[0]:.4f} / {evaluate(rows, 0.0)[1]:.4f}")
    oracle = [max(r["candidates"], key=lambda c: c["cosine"]) for r in rows]
    print(f"oracle within these candidates (cosine): {sum(c['cosine'] for c in oracle) / len(rows):.4f}")


if __name__ == "__main__":
    main()
