"""The sweep on a CUDA GPU against the same machine's CPU, in one run (issue 14's CUDA path).

    python bench/bench_gpu.py [--model shipped|DIR] [--docs 64] [--tokens 300] [--batch-docs 16,32,64,128]

Loads the model on the GPU with the automatic dtype (bf16 where the GPU computes it), then times: the warm
load (model + tokenizer, median of three), one short text, one --tokens-token text (median of three texts), and
batch s/doc over --docs texts for each documents-per-forward setting. The reference is the same engine on the
same machine's CPU with its own automatic dtype, on the first --cpu-docs texts, run here too; the ratio is
CPU s/doc / GPU s/doc, and the top-1 prompts of the two are compared (the dtypes differ, so a few may change).

Everything the CLI adds (DuckDB, the store) stays out, so this runs on a GPU box with only PyTorch and
transformers. Without CUDA it says so and exits 2.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_sweep  # noqa: E402

SHORT = "Write a short welcome email for new members of a hiking club, friendly and under 100 words."


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--docs", type=int, default=64)
    parser.add_argument("--cpu-docs", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--batch-docs", default="16,32,64,128")
    parser.add_argument("--dev", type=Path, default=bench_sweep.DEV, help="JSONL with responses to cut texts from")
    parser.add_argument("--device", default="cuda", help="cpu runs the same steps as a smoke test")
    args = parser.parse_args()
    bench_sweep.DEV = args.dev

    import torch

    dev = args.device
    if dev == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: no CUDA GPU here (torch.cuda.is_available() is False)")
        return 2
    from revprompt.core import hardware
    from revprompt.core.engine import DEFAULT_MAX_INPUT_TOKENS, Engine
    from revprompt.core.fast_load import load_model, load_tokenizer
    from revprompt.core.model import resolve

    warnings.simplefilter("ignore")  # every 300-token text is longer than the window: by design
    spec = resolve(args.model)
    gpu_dtype = hardware.resolve_dtype("auto", dev)
    name = torch.cuda.get_device_name(0) if dev == "cuda" else "cpu (smoke test)"
    cpu_dtype = hardware.resolve_dtype("auto", "cpu")
    window = spec.trained_response_tokens or DEFAULT_MAX_INPUT_TOKENS
    print(f"gpu: {name}  dtype {gpu_dtype}  torch {torch.__version__}")
    print(f"cpu: {hardware.describe_cpu()}  dtype {cpu_dtype}  threads {torch.get_num_threads()}")
    print(f"model: {spec.name} ({spec.path}), window {window}\n", flush=True)

    def load(device: str, dtype: str):
        model = load_model(spec.path, dtype, device)
        if device == "cuda":
            torch.cuda.synchronize()
        return model, load_tokenizer(spec.path)

    load(dev, gpu_dtype)  # first load: file cache
    warm = statistics.median(timed(lambda: load(dev, gpu_dtype)) for _ in range(3))
    print(f"{'warm start (model+tok)':<34} {warm:8.3f} s", flush=True)

    model, tok = load(dev, gpu_dtype)
    gpu = Engine(model, tok, max_input_tokens=window, model_name=spec.name)
    texts = bench_sweep.texts_of_about(tok, max(args.docs, args.cpu_docs), args.tokens)
    gpu.sweep(texts[0][:200])  # warm-up: kernels, allocator
    short = statistics.median(timed(lambda: gpu.sweep(SHORT)) for _ in range(3))
    print(f"{'one sentence, in process':<34} {short:8.3f} s", flush=True)
    one = statistics.median(timed(lambda t=t: gpu.sweep(t)) for t in texts[:3])
    print(f"{f'one {args.tokens}-token text (median of 3)':<34} {one:8.3f} s", flush=True)

    rows = {}
    gpu_results = None
    for batch in [int(b) for b in args.batch_docs.split(",")]:
        if dev == "cuda":
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        results = dict(gpu.sweep_many(texts[: args.docs], batch_docs=batch))
        s_per_doc = (time.perf_counter() - start) / args.docs
        peak = torch.cuda.max_memory_allocated() / 2**30 if dev == "cuda" else 0.0
        rows[batch] = s_per_doc
        gpu_results = gpu_results or results
        print(f"{f'batch s/doc, {batch} docs/forward':<34} {s_per_doc:8.4f} s/doc   peak {peak:5.1f} GiB", flush=True)

    cpu = Engine(load("cpu", cpu_dtype)[0], tok, max_input_tokens=window, model_name=spec.name)
    cpu.sweep(texts[0][:200])
    n = min(args.cpu_docs, len(texts))
    start = time.perf_counter()
    cpu_results = dict(cpu.sweep_many(texts[:n]))
    cpu_s = (time.perf_counter() - start) / n
    print(f"{f'cpu batch s/doc ({n} docs, default)':<34} {cpu_s:8.4f} s/doc [{cpu_dtype}]")
    best = min(rows, key=rows.get)
    print(f"{'cpu / gpu (best batch)':<34} {cpu_s / rows[best]:8.1f}x  ({best} docs/forward)")

    def top1(result):
        return result.candidates[0].prompt if result.candidates else None

    same = sum(top1(gpu_results[i]) == top1(cpu_results[i]) for i in range(n))
    print(f"top-1 prompt identical on GPU and CPU in {same} of {n} docs")
    print(
        json.dumps(
            {
                "gpu": name,
                "gpu_dtype": gpu_dtype,
                "warm_s": warm,
                "short_s": short,
                "one_text_s": one,
                "batch_s_per_doc": rows,
                "cpu_s_per_doc": cpu_s,
                "cpu_dtype": cpu_dtype,
                "top1_same": [same, n],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
