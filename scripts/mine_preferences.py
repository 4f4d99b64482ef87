"""Mine ranking mistakes on training pairs: sweep each response with the shipped model and record every
candidate with its perplexity and token-set F1 to the true prompt.

A pair is a ranking mistake when the top-1 candidate is clearly further from the true prompt than another
candidate the sweep produced (F1 lower by at least --gap). Those (response, true prompt, top-1) triples are
the preference pairs `revprompt train --prefer` learns from: the true prompt should be more likely than the
fluent wrong guess the ranking put first. Token-set F1 (lexical) picks them, not the MiniLM cosine the
evaluation reports, so the metric's own embedding model plays no part in training.

    python scripts/mine_preferences.py runs/clean-v3-gpt4chat.jsonl -o runs/prefs.jsonl --sample 1600 --seed 11

Resumable: rows already in the output are skipped. On a borrowed GPU, `--offset 1600` skips the rows an earlier
run mined (the same seed shuffles the same way), `--max-minutes` stops cleanly between documents before the lease
ends, and `--batch-docs` decodes more documents per forward than the CPU default.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import warnings
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pairs", help="JSONL with prompt and response")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--sample", type=int, default=1600)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--model", default=None, help="adapter or model (default: the shipped one)")
    ap.add_argument("--offset", type=int, default=0, help="skip the first N shuffled rows (mined before)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-docs", type=int, default=None)
    ap.add_argument("--max-minutes", type=float, default=0, help="stop between documents after this long")
    args = ap.parse_args(argv)

    from revprompt.core.engine import Engine  # not cli_options: a GPU box may lack the CLI's duckdb
    from revprompt.core.progress import BatchProgress
    from revprompt.training.metrics import token_f1

    rows = [json.loads(line) for line in Path(args.pairs).read_text(encoding="utf-8").split("\n") if line.strip()]
    random.Random(args.seed).shuffle(rows)
    rows = rows[: args.offset + args.sample]
    out = Path(args.output)
    done = set()
    if out.exists():
        done = {json.loads(line)["i"] for line in out.read_text(encoding="utf-8").split("\n") if line.strip()}
    todo = [(i, r) for i, r in enumerate(rows) if i >= args.offset and i not in done]
    engine = Engine.load(args.model, top_n=64, device=args.device, batch_docs=args.batch_docs)
    deadline = time.monotonic() + args.max_minutes * 60 if args.max_minutes else None
    bar = BatchProgress(label="pairs", enabled=True)
    bar.start(len(todo), skipped=len(done))
    from types import SimpleNamespace

    with warnings.catch_warnings(), out.open("a", encoding="utf-8") as f:
        warnings.simplefilter("ignore")
        for (_, result), (i, row) in zip(engine.sweep_many([r["response"] for _, r in todo]), todo):
            cands = [
                {
                    "prompt": c.prompt,
                    "mean_nll": round(c.mean_nll, 5),
                    "f1": round(token_f1(c.prompt, row["prompt"]), 4),
                }
                for c in result.candidates
            ]
            f.write(
                json.dumps(
                    {
                        "i": i,
                        "prompt": row["prompt"],
                        "response": row["response"],
                        "source": row.get("source"),
                        "candidates": cands,
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
            f.flush()
            bar.advance(SimpleNamespace(status="done", uri=str(i), error=None))
            if deadline and time.monotonic() > deadline:
                break
    bar.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
