"""Training throughput: the old trainer's settings against today's default, same pairs, same machine, one run.

    .venv/bin/python bench/bench_train.py                      # 64 ShareGPT pairs, 8 steps of 8 each
    .venv/bin/python bench/bench_train.py --extra freeze0      # also time the default without frozen layers

"old" is `revprompt train` as the first adapter was trained: fp32, 192-token responses, LoRA on all 18 layers.
"new" is today's default: bf16 autocast where the CPU computes bf16 natively (avx512_bf16 / amx_bf16; fp32 on
plain AVX2) with the frozen base held in bf16, 128-token responses, the lowest 6 layers frozen (no LoRA, so no
backward through them), no LoRA dropout, micro-batches of 8, and the prompt loss in cache-sized blocks of 4
positions (the old trainer took one cross-entropy over all of them).
Prints pairs/s of each and the ratio new/old; the CPU flags the numbers came from go with them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "train" / "sharegpt_chatgpt.jsonl"

CONFIGS = {
    "old": dict(bf16=False, max_response_tokens=192, freeze_layers=0, lora_dropout=0.05, loss_rows=0),
    "new": dict(bf16=None, max_response_tokens=128, freeze_layers=6, batch_size=8, grad_accum=1),
    # variants, timed only when asked for with --extra
    "freeze0": dict(bf16=None, max_response_tokens=128, freeze_layers=0),
    "freeze9": dict(bf16=None, max_response_tokens=128, freeze_layers=9),
    "bf16-192": dict(bf16=None, max_response_tokens=192, freeze_layers=0, lora_dropout=0.05),
    "new-b4": dict(bf16=None, max_response_tokens=128, freeze_layers=6, batch_size=4, grad_accum=2),
}


def cpu_flags() -> str:
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown"
    return ",".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags) or "none of avx2/avx512"


def run(name: str, pairs, steps: int, base) -> dict:
    from revprompt.training.train import TrainConfig, train

    settings = {"batch_size": 4, "grad_accum": 2, **CONFIGS[name]}
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(
            data=[],
            out_dir=out,
            base_model=base,
            max_steps=steps,
            warmup_steps=2,
            save_every=10**6,
            progress=False,
            resume=False,
            schedule="cosine",
            **settings,
        )
        t0 = time.perf_counter()
        record = train(cfg, pairs=pairs)
        wall = time.perf_counter() - t0
    return {
        "config": name,
        **settings,
        "bf16_used": record["bf16"],
        "pairs": record["examples_seen"],
        "loop_seconds": record["seconds"],
        "pairs_per_s": record["examples_per_second"],
        "wall_seconds": round(wall, 1),
        "mean_loss": record["mean_loss_first_20"],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8, help="optimiser steps per config (8 pairs each)")
    parser.add_argument("--base", default="base")
    parser.add_argument("--extra", nargs="*", default=[], choices=[c for c in CONFIGS if c not in ("old", "new")])
    parser.add_argument("--json", dest="json_out", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    from revprompt.training.data import read_pairs, sample_mix

    pairs = sample_mix(read_pairs([args.data]), args.pairs, seed=0)
    results = []
    for name in ["new", "old", *args.extra]:  # "new" first: any warm-up cost of the process falls on it
        result = run(name, pairs, args.steps, args.base)
        results.append(result)
        print(json.dumps(result), flush=True)
    by = {r["config"]: r for r in results}
    import torch

    summary = {
        "cpu_flags": cpu_flags(),
        "threads": torch.get_num_threads(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "pairs_per_s": {r["config"]: r["pairs_per_s"] for r in results},
        "ratio_new_over_old": round(by["new"]["pairs_per_s"] / by["old"]["pairs_per_s"], 2),
    }
    for name in args.extra:
        summary[f"ratio_{name}_over_old"] = round(by[name]["pairs_per_s"] / by["old"]["pairs_per_s"], 2)
    print(json.dumps(summary, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"summary": summary, "runs": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
