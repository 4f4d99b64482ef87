"""Latency as a user meets it: today's settings against the new defaults, on the same machine and texts.

    python bench/bench_latency.py [--model shipped|base|DIR] [--docs 16] [--tokens 300] [--runs 3]

Measures, for "legacy" (fp32, from_pretrained + AutoTokenizer, 192-token window, 4 docs per forward, as before
issue 14, one forest, the 24 contrastive configurations) and "new" (auto dtype, the fast loader, the model's
trained window, the engine's default --batch-docs, its worker forests side by side on a CPU, fp16 batch weights
where the CPU lacks native bf16, and the default beam search beside the 24 configurations, docs/model.md §26):

* cold start: a fresh Python process importing revprompt and loading model + tokenizer (the floor,
  `python -c "import torch, transformers"`, is timed next to it);
* warm start: model + tokenizer load in a process that has already imported everything (median of --runs);
* short text: `revprompt analyze "<one sentence>"` end to end in a fresh process (model cached);
* one --tokens-token text: one sweep, in process (the median over three texts);
* batch: s/doc over --docs texts of --tokens tokens (load and the one-off packing excluded; the fp16 packing
  time is printed), and whether top-1 prompts agree.

Every line carries the dtype; the header prints the CPU flags that decide it (`avx512_bf16`/`amx_bf16` make
bf16 native). Ratios are legacy / new (> 1: the new defaults are faster). Timings from a busy machine are
noisy: say so when you report them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sweep import texts_of_about  # noqa: E402

HF_MODEL_ENV = "REVPROMPT_HF_MODEL"  # core/fast_load.py: transformers' model and tokenizer instead of the own ones
SHORT = "Get seven to nine hours of sleep, keep a regular bedtime and avoid screens for an hour before bed."
LEGACY = {"dtype": "float32", "window": 192, "batch_docs": 4, "loader": "from_pretrained"}


def timed_subprocess(code_or_args: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(code_or_args, check=True, capture_output=True, env={**os.environ, **(env or {})})
    return time.perf_counter() - start


def legacy_load(spec_path: Path):
    """What core.model.load did before issue 14: generic loaders, fp32."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the bars cost nothing; they only clutter this report
    model = AutoModelForCausalLM.from_pretrained(str(spec_path), dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(str(spec_path))


def new_load(spec_path: Path, dtype: str):
    from revprompt.core.fast_load import load_model, load_tokenizer

    return load_model(spec_path, dtype, "cpu"), load_tokenizer(spec_path)


def median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def line(name: str, legacy: float, new: float, unit: str = "s", dtypes=("float32", "?")) -> None:
    ratio = legacy / new if new > 0 else float("nan")
    print(
        f"{name:<28} legacy {legacy:8.3f} {unit} [{dtypes[0]}]   new {new:8.3f} {unit} [{dtypes[1]}]   "
        f"ratio {ratio:5.2f}x",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--docs", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3, help="repeats of the start-up timings (median)")
    parser.add_argument(
        "--batch-docs",
        type=int,
        default=None,
        help="documents per forward for the new settings (default: the engine's)",
    )
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument(
        "--beams",
        type=int,
        default=None,
        help="the new side's beam width (default: the engine's, 4; 0: the 24 contrastive configurations alone, "
        "as web pages are swept)",
    )
    parser.add_argument("--skip-cli", action="store_true", help="skip the subprocess timings (cold, short text)")
    args = parser.parse_args()

    import torch

    from revprompt.core import hardware
    from revprompt.core.engine import DEFAULT_BATCH_DOCS, DEFAULT_MAX_INPUT_TOKENS, Engine
    from revprompt.core.model import resolve
    from revprompt.core.types import DEFAULT_SWEEP, sweep_configs

    spec = resolve(args.model)
    args.batch_docs = args.batch_docs or DEFAULT_BATCH_DOCS
    new_dtype = hardware.resolve_dtype("auto", "cpu")
    new_window = spec.trained_response_tokens or DEFAULT_MAX_INPUT_TOKENS
    dtypes = (LEGACY["dtype"], new_dtype)
    print(
        f"cpu flags: {hardware.describe_cpu()}  native bf16: {hardware.cpu_has_native_bf16()}  "
        f"threads: {torch.get_num_threads()}  torch {torch.__version__}"
    )
    print(f"model: {spec.name} ({spec.path})")
    print(f"legacy: fp32, from_pretrained, window {LEGACY['window']}, {LEGACY['batch_docs']} docs/forward")
    beams = "engine default" if args.beams is None else args.beams
    print(
        f"new:    {new_dtype}, fast loader, window {new_window}, {args.batch_docs} docs/forward, beams {beams}\n",
        flush=True,
    )

    model_arg = ["--model", args.model] if args.model else []
    if not args.skip_cli:
        py = sys.executable
        floor = statistics.median(timed_subprocess([py, "-c", "import torch, transformers"]) for _ in range(args.runs))
        legacy_cold = statistics.median(
            timed_subprocess(
                [
                    py,
                    "-c",
                    (
                        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); from bench_latency import legacy_load; "
                        f"from revprompt.core.model import resolve; legacy_load(resolve({args.model!r}).path)"
                    ),
                ]
            )
            for _ in range(args.runs)
        )
        new_cold = statistics.median(
            timed_subprocess(
                [
                    py,
                    "-c",
                    (f"from revprompt.core.model import load; load({args.model!r}, dtype={new_dtype!r}, device='cpu')"),
                ]
            )
            for _ in range(args.runs)
        )
        print(f"{'import torch, transformers':<28} {floor:8.3f} s (the floor)")
        line("cold start (import + load)", legacy_cold, new_cold, dtypes=dtypes)
        # The command a user types (analysis plugins on), each run into a fresh database so nothing is resumed;
        # legacy is transformers' model and tokenizer (REVPROMPT_HF_MODEL=1 forces both off the own ones).
        with tempfile.TemporaryDirectory() as tmp:

            def analyze(name: str, i: int, extra: list[str], env: dict | None = None) -> float:
                db = str(Path(tmp) / f"{name}-{i}.duckdb")
                return timed_subprocess([py, "-m", "revprompt", "analyze", SHORT, "--db", db, *model_arg, *extra], env)

            legacy_flags = ["--dtype", "float32", "--max-input-tokens", "192"]
            legacy_short = statistics.median(
                analyze("legacy", i, legacy_flags, {HF_MODEL_ENV: "1"}) for i in range(args.runs)
            )
            # The floor and the new e2e alternate, so a machine that speeds up or slows down meanwhile (a shared
            # VM does) moves both; the ratio is of their medians.
            floors, news = [], []
            for i in range(args.runs):
                floors.append(timed_subprocess([py, "-c", "import torch, transformers"]))
                news.append(analyze("new", i, ["--dtype", new_dtype]))
            new_short, paired_floor = statistics.median(news), statistics.median(floors)
        line("short text, analyze e2e", legacy_short, new_short, dtypes=dtypes)
        print(
            f"{'  new e2e / import floor':<28} {new_short / paired_floor:8.2f}x (issue 14 asks <= 2x; floor "
            f"{paired_floor:.3f} s measured alternately with it; runs: e2e "
            f"{' '.join(f'{t:.2f}' for t in news)}, floor {' '.join(f'{t:.2f}' for t in floors)})"
        )

    legacy_warm = median_time(lambda: legacy_load(spec.path), args.runs)
    new_warm = median_time(lambda: new_load(spec.path, new_dtype), args.runs)
    line("warm start (model+tok)", legacy_warm, new_warm, dtypes=dtypes)

    legacy_model, legacy_tok = legacy_load(spec.path)
    new_model, new_tok = new_load(spec.path, new_dtype)
    common = dict(max_new_tokens=args.max_new_tokens, model_name=spec.name)
    legacy = Engine(
        legacy_model,
        legacy_tok,
        configs=DEFAULT_SWEEP,  # the 24 contrastive configurations alone: the beam search came later (§26)
        max_input_tokens=LEGACY["window"],
        batch_docs=LEGACY["batch_docs"],
        workers=1,
        **common,
    )
    # The new settings as `Engine.load(dtype="auto")` makes them: worker forests, fp16 batch weights where they pay.
    new = Engine(
        new_model,
        new_tok,
        max_input_tokens=new_window,
        batch_docs=args.batch_docs,
        half_weights=hardware.half_weights_pay("cpu", new_dtype),
        configs=sweep_configs() if args.beams is None else sweep_configs(args.beams),
        **common,
    )
    print(
        f"new batch: {new.workers} forest(s) side by side, weights {new.describe()['batch_weights']} "
        f"(legacy: 1 forest, float32)",
        flush=True,
    )
    texts = texts_of_about(legacy_tok, max(args.docs, 1), args.tokens)
    if not texts:
        raise SystemExit(f"no dev text has {args.tokens} tokens")
    import warnings

    warnings.simplefilter("ignore")  # every 300-token text is longer than a 192 window: by design
    for engine in (legacy, new):
        engine.sweep(texts[0][:200])  # warm-up: first-call allocations and weight packing
        start = time.perf_counter()
        dict(engine.sweep_many([texts[0][:200], texts[1][:200]]))  # a batch's own packing (fp16 weights), once
        if engine is new and new.half_weights:
            print(f"fp16 batch weights packed in {time.perf_counter() - start:.1f} s (once per engine)", flush=True)

    # The median over three texts: one text alone says more about that text than about the settings (a
    # candidate that runs on to the length cap in one dtype and not the other doubles its time).
    singles = texts[:3]
    legacy_one = statistics.median(median_time(lambda t=t: legacy.sweep(t), 1) for t in singles)
    new_one = statistics.median(median_time(lambda t=t: new.sweep(t), 1) for t in singles)
    line(f"one {args.tokens}-token text ({len(singles)}, median)", legacy_one, new_one, dtypes=dtypes)

    results = {}
    for name, engine in (("legacy", legacy), ("new", new)):
        start = time.perf_counter()
        results[name] = dict(engine.sweep_many(texts))
        results[name + "_s"] = (time.perf_counter() - start) / len(texts)
    line(f"batch s/doc ({len(texts)} docs)", results["legacy_s"], results["new_s"], "s/doc", dtypes=dtypes)

    def top1(result):
        return result.candidates[0].prompt if result.candidates else None

    same = sum(top1(results["legacy"][i]) == top1(results["new"][i]) for i in range(len(texts)))
    print(
        f"top-1 prompt identical in {same} of {len(texts)} docs (dtype/window differ, so some may change; "
        "quality is checked with `revprompt eval`)"
    )
    print(
        json.dumps(
            {
                "legacy_batch_s_per_doc": results["legacy_s"],
                "new_batch_s_per_doc": results["new_s"],
                "dtype": new_dtype,
                "cpu_flags": hardware.describe_cpu(),
            }
        )
    )


if __name__ == "__main__":
    main()
