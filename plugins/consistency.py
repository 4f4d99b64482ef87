"""Pair consistency for dataset curation: how well does each response support its prompt?

For every (prompt, response) pair:

- `perplexity`: perplexity of the true prompt given the response (the model reading response -> prompt);
- `rank`: where the true prompt would land among the sweep's own candidates for that response,
  1 + the number of candidates with a lower perplexity (1: the model finds no prompt likelier than the real
  one; n_candidates + 1: every candidate beats it);
- `best_prompt` / `best_perplexity`: the sweep's best guess, to read next to the true prompt.

The weakest pairs, worst rank first and then highest perplexity, are flagged (`flag_fraction` of them):
candidates for removal or a closer look.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import UserError

PROMPT_KEYS = ("prompt", "instruction", "question", "input")
RESPONSE_KEYS = ("response", "output", "answer", "completion")


@dataclass
class Pair:
    prompt: str
    response: str
    line: int = 0
    id: Any = None
    record: dict = field(default_factory=dict)


@dataclass
class PairScore:
    index: int
    prompt: str
    response: str
    perplexity: float
    mean_nll: float
    rank: int
    n_candidates: int
    best_prompt: str | None
    best_perplexity: float | None
    truncated: bool = False
    flagged: bool = False
    id: Any = None
    line: int = 0

    def to_dict(self, with_response: bool = False) -> dict:
        out = asdict(self)
        if not with_response:
            out.pop("response")
        return out


def _pick(record: dict, keys: Iterable[str]) -> str | None:
    for key in keys:
        value = record.get(key)
        if isinstance(value, str):
            return value
    return None


def read_pairs(path: str | Path, limit: int | None = None) -> list[Pair]:
    """(prompt, response) pairs from JSON Lines (or a JSON array): keys prompt/response, or
    instruction/output, question/answer, input/completion."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"no such file: {path}")
    text = path.read_text(encoding="utf-8")
    records: list[tuple[int, Any]] = []
    if text.lstrip().startswith("["):
        try:
            records = list(enumerate(json.loads(text), start=1))
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: not valid JSON: {exc}") from None
    else:
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append((line_no, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{line_no}: not valid JSON: {exc.msg}") from None
            if limit is not None and len(records) >= limit:
                break
    pairs = []
    for line_no, record in records[:limit] if limit is not None else records:
        if not isinstance(record, dict):
            raise UserError(f"{path}:{line_no}: expected a JSON object with a prompt and a response")
        prompt, response = _pick(record, PROMPT_KEYS), _pick(record, RESPONSE_KEYS)
        if prompt is None or response is None:
            raise UserError(
                f"{path}:{line_no}: needs a prompt ({'/'.join(PROMPT_KEYS)}) and a response ({'/'.join(RESPONSE_KEYS)})"
            )
        pairs.append(Pair(prompt, response, line_no, record.get("id"), record))
    if not pairs:
        raise UserError(f"{path}: no pairs")
    return pairs


def score_pair(engine, prompt: str, response: str, index: int = 0) -> PairScore:
    """Score one pair with an Engine (perplexity of the true prompt, its rank among the sweep's candidates)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # truncation is reported in the row instead
        true = engine.score(response, [prompt])[0]
        result = engine.sweep(response)
    candidates = result.candidates
    rank = 1 + sum(1 for c in candidates if c.perplexity < true.perplexity)
    best = candidates[0] if candidates else None
    return PairScore(
        index=index,
        prompt=prompt,
        response=response,
        perplexity=float(true.perplexity),
        mean_nll=float(true.mean_nll),
        rank=rank,
        n_candidates=len(candidates),
        best_prompt=best.prompt if best else None,
        best_perplexity=float(best.perplexity) if best else None,
        truncated=bool(result.truncated),
    )


def flag_weakest(scores: list[PairScore], fraction: float) -> list[PairScore]:
    """Mark the weakest `fraction` of pairs (at least one when fraction > 0); returns them, weakest first."""
    if not 0 <= fraction <= 1:
        raise UserError("--flag-fraction must be between 0 and 1")
    for s in scores:
        s.flagged = False
    ordered = weakest_first(scores)
    n_flag = min(len(scores), math.ceil(fraction * len(scores))) if fraction > 0 else 0
    for s in ordered[:n_flag]:
        s.flagged = True
    return ordered[:n_flag]


def weakest_first(scores: list[PairScore]) -> list[PairScore]:
    return sorted(scores, key=lambda s: (-s.rank, -s.perplexity, s.index))


def score_pairs(
    engine,
    pairs: Iterable[Pair | tuple[str, str] | dict],
    flag_fraction: float = 0.1,
    progress: Callable[[PairScore], None] | None = None,
) -> list[PairScore]:
    """Score every pair (in input order) and flag the weakest `flag_fraction`."""
    scores = []
    for i, pair in enumerate(pairs):
        if isinstance(pair, Pair):
            p = pair
        elif isinstance(pair, dict):
            p = Pair(_pick(pair, PROMPT_KEYS) or "", _pick(pair, RESPONSE_KEYS) or "", id=pair.get("id"))
        else:
            p = Pair(pair[0], pair[1])
        score = score_pair(engine, p.prompt, p.response, index=i)
        score.id, score.line = p.id, p.line
        scores.append(score)
        if progress:
            progress(score)
    flag_weakest(scores, flag_fraction)
    return scores
