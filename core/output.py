"""Printing results for people (rich tables) and for programs (JSON)."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal

from rich.console import Console
from rich.table import Table

from .types import SweepResult


def _jsonable(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return value


def print_rows(columns, rows, as_json: bool = False, max_width: int = 60) -> None:
    if as_json:
        for row in rows:
            print(json.dumps({c: _jsonable(v) for c, v in zip(columns, row)}, ensure_ascii=False, default=str))
        return
    table = Table(show_lines=False)
    for c in columns:
        table.add_column(str(c), overflow="fold", max_width=max_width)
    for row in rows:
        table.add_row(*["NULL" if v is None else str(v) for v in row])
    Console().print(table)
    Console(stderr=True).print(f"[dim]{len(rows)} row{'s' if len(rows) != 1 else ''}[/dim]")


def result_to_json(uri: str, result: SweepResult, doc_id: int | None = None, run_id: str | None = None) -> dict:
    return {
        "uri": uri,
        "run_id": run_id,
        "doc_id": doc_id,
        "n_input_tokens": result.n_input_tokens,
        "truncated": result.truncated,
        "seconds": round(result.seconds, 3),
        "candidates": [
            {
                "rank": c.rank,
                "prompt": c.prompt,
                "perplexity": c.perplexity,
                "confidence": c.confidence,
                "top_k": c.top_k,
                "penalty_alpha": c.penalty_alpha,
                "configs": [cfg.label for cfg in c.configs],
                **({"channel": c.channel} if c.channel is not None else {}),
                "tokens": [{"token": t, "prob": p} for t, p in zip(c.tokens, c.token_probs)],
            }
            for c in result.candidates
        ],
    }


def print_result(title: str, result: SweepResult) -> None:
    console = Console()
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("prompt", overflow="fold")
    table.add_column("perplexity", justify="right")
    table.add_column("config", no_wrap=True)
    for c in result.candidates:
        more = f" +{len(c.configs) - 1}" if len(c.configs) > 1 else ""
        first = c.configs[0].label if c.configs else "-"
        table.add_row(str(c.rank), c.prompt, f"{c.perplexity:.2f}", f"{first}{more}")
    console.print(table)
    if not result.candidates:
        console.print("[yellow]no candidate prompt (the model produced only empty sequences)[/yellow]")
