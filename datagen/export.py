"""Write the pairs as the JSONL files training reads: train.jsonl and dev.jsonl, one
{"id", "prompt", "response", "source", "category", "model"} object per line.

The split hashes the normalised prompt (with a seed): the same prompt always lands on the same side, so a
prompt answered twice can never sit in both train and dev, and re-exporting a grown table keeps every old
pair where it was.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import UserError
from .dedup import prompt_key
from .tables import DatagenTables


def in_dev(prompt: str, dev_fraction: float, seed: int) -> bool:
    digest = hashlib.sha256(f"{seed}\x00{prompt_key(prompt)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < dev_fraction


@dataclass
class ExportReport:
    train_path: str
    dev_path: str
    train: int = 0
    dev: int = 0
    by_source: Counter = field(default_factory=Counter)


def export_pairs(
    tables: DatagenTables,
    out_dir: str | Path,
    dev_fraction: float = 0.02,
    seed: int = 0,
    sources: Sequence[str] = (),
    categories: Sequence[str] = (),
    include_incomplete: bool = False,
) -> ExportReport:
    if not 0.0 <= dev_fraction < 1.0:
        raise UserError("--dev-fraction must be at least 0 and below 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_path, dev_path = out / "train.jsonl", out / "dev.jsonl"
    report = ExportReport(str(train_path), str(dev_path))
    # Written to temporary names and renamed at the end: a failed export never leaves half a training set.
    tmp_train, tmp_dev = train_path.with_suffix(".jsonl.tmp"), dev_path.with_suffix(".jsonl.tmp")
    try:
        with open(tmp_train, "w", encoding="utf-8") as train, open(tmp_dev, "w", encoding="utf-8") as dev:
            for pair in tables.iter_pairs(sources, categories, include_incomplete):
                row = {
                    "id": f"dg{pair['pair_id']}",
                    "prompt": pair["prompt"],
                    "response": pair["response"],
                    "source": pair["source"],
                    "category": pair["category"],
                    "model": pair["model"],
                }
                line = json.dumps(row, ensure_ascii=False) + "\n"
                if dev_fraction > 0 and in_dev(pair["prompt"], dev_fraction, seed):
                    dev.write(line)
                    report.dev += 1
                else:
                    train.write(line)
                    report.train += 1
                report.by_source[pair["source"]] += 1
        if report.train + report.dev == 0:
            raise UserError("no pairs to export (run `revprompt datagen responses` or `datagen import` first)")
        os.replace(tmp_train, train_path)
        # Written even when empty (--dev-fraction 0), so a stale dev.jsonl from an earlier export cannot linger.
        os.replace(tmp_dev, dev_path)
    finally:
        for tmp in (tmp_train, tmp_dev):
            if tmp.exists():
                tmp.unlink()
    return report
