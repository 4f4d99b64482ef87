"""Evaluate a model on (prompt, response) pairs: run the engine on each response, score what it proposes.

For every pair and every metric (see `metrics`):
    top1      the rank-1 candidate against the true prompt
    best      the best of the kept candidates (top 10 by default), each metric maximised on its own
    baseline  the response's first sentence used as the prompt: the score any model must beat

The summary is the mean of each over the pairs, plus the engine's mean seconds per document.
Per-pair rows can go to a JSONL "details" file as they finish; re-running with the same file skips the
pairs it already holds, so a long evaluation survives interruption.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from ..core.errors import UserError
from .metrics import METRICS, Embedder, score_texts

# --------------------------------------------------------------------------------------------------------
# The first-sentence baseline
# --------------------------------------------------------------------------------------------------------
BASELINE_MAX_WORDS = 40

_HEADING = re.compile(r"^\s{0,3}#{1,6}(\s|$)")
_RULE = re.compile(r"^\s*([-*_=])(\s*\1){2,}\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_BOLD_LINE = re.compile(r"^\s*(\*\*|__)[^*_\n]+(\*\*|__)\s*:?\s*$")  # a line that is only bold text: a heading
_LABEL_LINE = re.compile(r"^\s*[^.!?:\s]+(\s+[^.!?:\s]+){0,2}\s*:\s*$")  # 'Introduction:' alone: a heading
_LINE_LEAD = re.compile(r"^\s*(?:>\s*)*(?:[-*+•]\s+|\d{1,3}[.)]\s+)?")  # blockquote and list markers
_EMPHASIS = re.compile(r"\*\*|__")
# A sentence ends at . ! ? (runs of them, then any closing quotes or brackets) followed by whitespace or the end.
_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s|$)")
_ABBREVIATIONS = {
    "e.g",
    "i.e",
    "mr",
    "mrs",
    "ms",
    "dr",
    "prof",
    "sr",
    "jr",
    "st",
    "vs",
    "fig",
    "approx",
    "inc",
    "ltd",
    "a.m",
    "p.m",
    "u.s",
    "u.k",
    "cf",
    "al",
}


def _is_abbreviation(text: str, end: int) -> bool:
    """Whether the '.' at text[end] closes an abbreviation or an initial ('e.g.', 'Dr.', 'J.') and no sentence."""
    word = re.search(r"[\w.]*$", text[:end]).group(0).lower().strip(".")
    if not word:
        return False
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha() and text[end - 1].isupper())


def first_sentence(text: str, max_words: int = BASELINE_MAX_WORDS) -> str:
    """The response's first sentence, as a stand-in prompt.

    Leading blank lines, markdown headings, rules, code fences, bold-only title lines and short label lines
    ('Introduction:') are skipped; the first content line is cut at its first sentence end (. ! ? then
    whitespace) or kept whole, list, quote and bold markers removed, and capped at `max_words` words.
    A text of nothing but headings gives the first one.
    """
    lines = text.splitlines()
    line = ""
    for raw in lines:
        if not raw.strip() or any(p.match(raw) for p in (_HEADING, _RULE, _FENCE, _BOLD_LINE, _LABEL_LINE)):
            continue
        line = raw
        break
    if not line:  # headings only (or nothing): use the first non-empty line, markers stripped
        line = next((raw for raw in lines if raw.strip()), "")
        line = re.sub(r"^\s*#+\s*", "", line)
    line = _EMPHASIS.sub("", _LINE_LEAD.sub("", line, count=1)).strip()
    for match in _END.finditer(line):
        if match.group(0) == "." and _is_abbreviation(line, match.start()):
            continue
        line = line[: match.end()]
        break
    words = line.split()
    if len(words) > max_words:
        line = " ".join(words[:max_words])
    return line.strip()


# --------------------------------------------------------------------------------------------------------
# Rows and the summary
# --------------------------------------------------------------------------------------------------------
def pair_keys(pairs: Sequence) -> list[str]:
    """A stable key per pair (hash of prompt and response; repeats numbered), for resuming from a details file."""
    seen: dict[str, int] = {}
    keys = []
    for pair in pairs:
        digest = hashlib.sha1(f"{pair.prompt}\x00{pair.response}".encode()).hexdigest()[:16]
        n = seen.get(digest, 0)
        seen[digest] = n + 1
        keys.append(digest if n == 0 else f"{digest}-{n}")
    return keys


def best_key(top: int) -> str:
    return f"best_of_{top}"


def summarize(rows: Sequence[dict], top: int) -> dict:
    """{metric: {"top1", "best_of_<top>", "baseline"}}: means over the rows (None for no rows)."""
    out = {}
    for metric in METRICS:
        values = {}
        for part, name in (("top1", "top1"), ("best", best_key(top)), ("baseline", "baseline")):
            scores = [row["scores"][metric][part] for row in rows]
            values[name] = round(sum(scores) / len(scores), 4) if scores else None
        out[metric] = values
    return out


@dataclass
class EvalReport:
    model: str
    top: int
    rows: list[dict] = field(default_factory=list)
    resumed: int = 0  # rows taken from an earlier run's details file
    wall_seconds: float = 0.0  # this run, model loading excluded
    sources: list[str] = field(default_factory=list)  # each row's pair source (file stem or its `source` field)

    @property
    def pairs(self) -> int:
        return len(self.rows)

    @property
    def seconds_per_doc(self) -> float | None:
        if not self.rows:
            return None
        return round(sum(row["seconds"] for row in self.rows) / len(self.rows), 3)

    @property
    def metrics(self) -> dict:
        return summarize(self.rows, self.top)

    def summary(self) -> dict:
        return {
            "model": self.model,
            "pairs": self.pairs,
            "seconds_per_doc": self.seconds_per_doc,
            "metrics": self.metrics,
            "top": self.top,
            "truncated": sum(1 for row in self.rows if row.get("truncated")),
            "resumed": self.resumed,
            **({"by_source": self.by_source()} if len(set(self.sources)) > 1 else {}),
        }

    def by_source(self) -> dict:
        """{source: {"pairs", "metrics"}}: a mixed set (dev600: three answering models) judged part by part."""
        groups: dict[str, list[dict]] = {}
        for source, row in zip(self.sources, self.rows):
            groups.setdefault(source, []).append(row)
        return {src: {"pairs": len(rows), "metrics": summarize(rows, self.top)} for src, rows in groups.items()}


def score_pair(prompt: str, response: str, candidates: Sequence[str], embedder: Embedder | None = None) -> dict:
    """The scores of one pair: {"baseline": text, "scores": {metric: {"top1", "best", "baseline"}}, "per_candidate"}.

    No candidates scores as one empty candidate: 0 on every metric.
    """
    baseline = first_sentence(response)
    predictions = list(candidates) or [""]
    scored = score_texts([*predictions, baseline], prompt, embedder)
    per_candidate, base = scored[:-1], scored[-1]
    scores = {
        m: {
            "top1": round(per_candidate[0][m], 6),
            "best": round(max(s[m] for s in per_candidate), 6),
            "baseline": round(base[m], 6),
        }
        for m in METRICS
    }
    return {"baseline": baseline, "scores": scores, "per_candidate": per_candidate}


# --------------------------------------------------------------------------------------------------------
# The details file
# --------------------------------------------------------------------------------------------------------
SETTINGS = ("model", "top", "max_new_tokens", "max_input_tokens")


def read_details(path: str | Path) -> list[dict]:
    """Rows of a details file (an unfinished last line, from a killed run, is skipped)."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and "key" in row and "scores" in row:
                rows.append(row)
    return rows


def check_settings(rows: Iterable[dict], settings: dict, path: str | Path | None = None) -> None:
    """Refuse to mix rows made with other settings (model, top, token limits) into one summary."""
    for row in rows:
        for name, value in settings.items():
            if name in row and row[name] != value:
                where = f" {path}" if path else ""
                raise UserError(
                    f"the details file{where} holds rows made with {name}={row[name]!r}, not {value!r}; "
                    f"use another --details file or the same settings"
                )


def _append(path: Path, row: dict) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()


# --------------------------------------------------------------------------------------------------------
# The evaluation
# --------------------------------------------------------------------------------------------------------
def _sweeps(engine, texts: list[str]):
    """Results in order; batched (several documents per forward) when the engine can. The per-document
    truncation warning is silenced: the report counts truncated responses instead."""
    from ..core.engine import InputTruncatedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputTruncatedWarning)
        if hasattr(engine, "sweep_many"):
            for _, result in engine.sweep_many(texts):
                yield result
        else:
            for text in texts:
                t0 = time.perf_counter()
                result = engine.sweep(text)
                result.seconds = time.perf_counter() - t0
                yield result


def evaluate(
    engine,
    pairs: Sequence,
    limit: int | None = None,
    progress: bool = True,
    on_result: Callable[[dict], None] | None = None,
    *,
    top: int | None = None,
    details: str | Path | None = None,
    embedder: Embedder | None = None,
) -> EvalReport:
    """Run `engine` on each pair's response and score its candidates against the pair's prompt.

    `engine`: an Engine, or a function returning one (called only if some pair is left to do).
    `pairs`: objects with `.prompt` and `.response` (training.data.Pair); the first `limit` are used.
    `top`: how many ranked candidates count for best-of (default: the engine's top_n).
    `details`: a JSONL file; rows already there are reused (resume), new rows are appended as they finish.
    `on_result(row)` is called for each newly scored pair. The report covers all selected pairs.
    """
    from ..core.progress import BatchProgress

    pairs = list(pairs)[:limit] if limit else list(pairs)
    keys = pair_keys(pairs)
    details_path = Path(details) if details else None
    earlier = {row["key"]: row for row in read_details(details_path)} if details_path else {}
    done = {k: earlier[k] for k in keys if k in earlier}
    todo = [(i, k, p) for i, (k, p) in enumerate(zip(keys, pairs)) if k not in done]

    if top is None and not todo and done:
        top = next(iter(done.values())).get("top")
    settings = {"top": top} if top is not None else {}
    check_settings(done.values(), settings, details_path)

    model_name = next(iter(done.values())).get("model", "unknown") if done else "unknown"
    rows: dict[str, dict] = dict(done)
    start = time.perf_counter()
    if todo:
        if not hasattr(engine, "sweep") and callable(engine):
            engine = engine()
        kept = getattr(engine, "top_n", None)
        top = min(top, kept) if top and kept else (top or kept or 10)  # the engine keeps no more than its top_n
        model_name = getattr(engine, "model_name", "custom")
        settings = {
            "model": model_name,
            "top": top,
            "max_new_tokens": getattr(engine, "max_new_tokens", None),
            "max_input_tokens": getattr(engine, "max_input_tokens", None),
        }
        if getattr(engine, "rerank", "perplexity") != "perplexity":  # rows of older runs have no such key
            settings["rerank"] = engine.rerank
        beams = [c.beams for c in getattr(engine, "configs", []) if c.beams]
        settings["beams"] = beams[0] if beams else 0  # rows made before the beam search have no such key
        check_settings(done.values(), settings, details_path)
        if details_path:
            details_path.parent.mkdir(parents=True, exist_ok=True)
        bar = BatchProgress(label="evaluating", enabled=progress)
        bar.start(len(todo), skipped=len(done))
        try:
            results = _sweeps(engine, [pair.response for _, _, pair in todo])
            for (index, key, pair), result in zip(todo, results):
                seconds = result.seconds
                candidates = result.candidates[:top]
                scored = score_pair(pair.prompt, pair.response, [c.prompt for c in candidates], embedder)
                row = {
                    "key": key,
                    "index": index,
                    **settings,
                    "prompt": pair.prompt,
                    "baseline": scored["baseline"],
                    "top1": candidates[0].prompt if candidates else "",
                    "seconds": round(seconds, 4),
                    "n_input_tokens": result.n_input_tokens,
                    "truncated": result.truncated,
                    "scores": scored["scores"],
                    "candidates": [
                        {
                            "rank": c.rank,
                            "prompt": c.prompt,
                            "perplexity": round(c.perplexity, 4),
                            "configs": len(getattr(c, "configs", None) or ()),  # how many sweep configs wrote it
                            **({"channel": round(c.channel, 4)} if getattr(c, "channel", None) is not None else {}),
                            **{m: round(v, 4) for m, v in s.items()},
                        }
                        for c, s in zip(candidates, scored["per_candidate"])
                    ],
                }
                rows[key] = row
                if details_path:
                    _append(details_path, row)
                if on_result:
                    on_result(row)
                bar.advance(SimpleNamespace(status="done", uri=f"pair {index + 1}", error=None))
        finally:
            bar.finish()
    if top is None:
        top = getattr(engine, "top_n", None) or 10
    ordered = [rows[k] for k in keys if k in rows]
    sources = [getattr(p, "source", "") or "" for k, p in zip(keys, pairs) if k in rows]
    return EvalReport(
        model=model_name,
        top=top,
        rows=ordered,
        resumed=len(done),
        wall_seconds=round(time.perf_counter() - start, 3),
        sources=sources,
    )
