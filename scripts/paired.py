"""Paired comparison of two `revprompt eval --details` files: is adapter B better than adapter A on the same rows?

Means of two runs differ by a few thousandths between adapters, inside each run's own spread; the per-row
differences on the same texts are far less noisy, so they decide whether a segment is shipped (docs/model.md).
Works on chat details (rows keyed by `key`, metrics `scores[m]["top1"]`) and on web-page details (keyed by
`file`, metric `title_cosine_top1`). Prints, per metric, the mean of B − A with its standard error, how many rows
got better and worse, and the same for consecutive slices of the rows (`--slices`), since a loss can sit in one part.

Usage: python scripts/paired.py A.jsonl B.jsonl [--metric cosine --metric token_f1] [--slices 2]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Paired:
    metric: str
    n: int
    mean: float
    stderr: float
    better: int
    worse: int


def load_rows(path: Path) -> dict[str, dict]:
    """Rows of a details file by their identity: `key` (chat) or `file` (web pages)."""
    rows: dict[str, dict] = {}
    for line in path.open(encoding="utf-8"):
        if not line.strip():
            continue
        row = json.loads(line)
        ident = row.get("key") or row.get("file")
        if ident is None:
            raise ValueError(f"{path}: a row has neither 'key' nor 'file'; is this a `revprompt eval --details` file?")
        rows[str(ident)] = row
    return rows


def metric_value(row: dict, metric: str) -> float | None:
    if metric == "title_cosine":
        value = row.get("title_cosine_top1")
    else:
        value = row.get("scores", {}).get(metric, {}).get("top1")
    return None if value is None else float(value)


def paired(diffs: list[float], metric: str) -> Paired:
    n = len(diffs)
    mean = sum(diffs) / n if n else 0.0
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1) if n > 1 else 0.0
    return Paired(
        metric, n, mean, math.sqrt(var / n) if n else 0.0, sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    )


def compare(a: dict[str, dict], b: dict[str, dict], metric: str, slices: int = 1) -> list[Paired]:
    """The whole comparison first, then one per slice of the shared rows in A's order."""
    shared = [k for k in a if k in b]
    diffs = []
    for k in shared:
        va, vb = metric_value(a[k], metric), metric_value(b[k], metric)
        if va is not None and vb is not None:
            diffs.append(vb - va)
    out = [paired(diffs, metric)]
    if slices > 1 and diffs:
        size = math.ceil(len(diffs) / slices)
        out += [
            paired(diffs[i : i + size], f"{metric}[{i}:{i + len(diffs[i : i + size])}]")
            for i in range(0, len(diffs), size)
        ]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path, help="details of the adapter to compare against (e.g. the shipped one)")
    parser.add_argument("b", type=Path, help="details of the candidate adapter")
    parser.add_argument("--metric", action="append", help="cosine, token_f1, bleu, exact_match or title_cosine")
    parser.add_argument("--slices", type=int, default=1, help="also compare consecutive slices of the rows")
    args = parser.parse_args(argv)
    try:
        a, b = load_rows(args.a), load_rows(args.b)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    web = any("file" in row for row in a.values())
    metrics = args.metric or (["title_cosine"] if web else ["cosine", "token_f1"])
    shared = sum(k in b for k in a)
    print(f"{shared} rows in both ({len(a)} in {args.a.name}, {len(b)} in {args.b.name})")
    for metric in metrics:
        for r in compare(a, b, metric, args.slices):
            print(
                f"{r.metric}: B - A = {r.mean:+.4f} ± {r.stderr:.4f} over {r.n} rows "
                f"(better {r.better}, worse {r.worse})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
