"""Blend two LoRA adapters of the same base into one: delta = (1 − t)·B₁A₁ + t·B₂A₂ ("model soup").

Two segments of one chain (one continued from the other) sit in the same basin, and a blend can keep some of what
each learned: in session 19 the web-page segment gained on page titles and lost on chat pairs (docs/model.md §19).
Averaging A and B separately would not give the average of the products, so the blend is exact instead: one
adapter of rank r₁ + r₂ whose A stacks both A's and whose B is [(1 − t)·B₁, t·B₂], with lora_alpha scaled so
alpha/r, PEFT's scale, stays what both adapters had. Page and format settings (revprompt.json) and the tokenizer
files come from the second adapter.

Usage: python scripts/soup_adapters.py ADAPTER1 ADAPTER2 -o OUT --t 0.5
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"


def soup(first: Path, second: Path, out: Path, t: float) -> int:
    """Write the blend to `out`; returns how many tensors it holds. Raises ValueError on adapters that differ."""
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"t must be between 0 and 1, not {t}")
    c1, c2 = (json.loads((d / CONFIG).read_text()) for d in (first, second))
    w1, w2 = load_file(str(first / WEIGHTS)), load_file(str(second / WEIGHTS))
    s1, s2 = c1["lora_alpha"] / c1["r"], c2["lora_alpha"] / c2["r"]
    if abs(s1 - s2) > 1e-9:
        raise ValueError(f"the adapters scale differently (alpha/r {s1} and {s2})")
    if set(w1) != set(w2):
        raise ValueError("the adapters adapt different modules")
    blended = {}
    for name, a in w1.items():
        x, y = a.float(), w2[name].float()
        if "lora_A" in name:
            blended[name] = torch.cat([x, y], dim=0).contiguous()
        elif "lora_B" in name:
            blended[name] = torch.cat([(1.0 - t) * x, t * y], dim=1).contiguous()
        else:
            raise ValueError(f"{name}: only LoRA A/B weights can be blended")
    out.mkdir(parents=True, exist_ok=True)
    save_file(blended, str(out / WEIGHTS), metadata={"format": "pt"})
    config = dict(c2)
    config["r"] = c1["r"] + c2["r"]
    config["lora_alpha"] = s2 * config["r"]
    (out / CONFIG).write_text(json.dumps(config, indent=2))
    for name in ("revprompt.json", "tokenizer.json", "tokenizer_config.json"):
        if (second / name).exists():
            shutil.copy(second / name, out / name)
    return len(blended)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=Path, help="adapter folder (weight 1 − t)")
    parser.add_argument("second", type=Path, help="adapter folder (weight t); its revprompt.json is kept")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--t", type=float, default=0.5)
    args = parser.parse_args(argv)
    try:
        n = soup(args.first, args.second, args.output, args.t)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.output}: {n} tensors, {1 - args.t:g} × {args.first} + {args.t:g} × {args.second}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
