"""The web-page yardstick: what an SEO user sees first when revprompt reads real pages.

Web pages have no true prompt, so two questions stand in for one:

- **Junk**: is the top-1 candidate junk for this page (`core.junk.junk_reasons`: template markers, repeats,
  a URL or code fence the page lacks, a programming language the page never names, a long verbatim copy, a
  length no prompt has)? Reported as a rate with counts per reason.
- **Title**: with the page's title heading removed from the text, how close (MiniLM cosine) does the top-1
  candidate come to the title, against the page's first sentence? A page's title is its author's short
  statement of what the page answers; a good reverse prompt should land nearer to it than the opening line.

Input: an index JSONL with `file` (HTML, relative to the index) and `title` per page, as
`../shared/data/web/index.jsonl`. Per-page rows can go to a details file; re-running resumes.
"""

from __future__ import annotations

import json
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import UserError
from ..core.junk import REASONS, junk_reasons
from .evaluate import first_sentence

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


@dataclass
class WebPage:
    file: str
    title: str
    text: str  # the page's main content as markdown, title heading removed


def _norm(text: str) -> str:
    return _NON_WORD.sub(" ", text.lower()).strip()


def strip_title(markdown: str, title: str) -> str:
    """The text without the heading (or line) that repeats the title: the yardstick asks the model to find
    the title, so it must not be able to read it off the top of the page."""
    target = _norm(title)
    lines = markdown.splitlines()
    for i, line in enumerate(lines):
        if line.strip() and _norm(line.lstrip("#").strip()) == target:
            del lines[i]
            break
    return "\n".join(lines).strip()


def read_pages(index: str | Path, limit: int | None = None) -> list[WebPage]:
    from ..sources.extract import extract_page

    index = Path(index)
    if not index.exists():
        raise UserError(f"no such file: {index}")
    pages = []
    for n, line in enumerate(index.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            file, title = row["file"], row["title"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise UserError(f"{index}:{n}: expected a JSON object with 'file' and 'title'") from None
        path = index.parent / file
        if not path.exists():
            raise UserError(f"{index}:{n}: no such page file: {path}")
        page = extract_page(path.read_text(encoding="utf-8", errors="replace"))
        pages.append(WebPage(file=file, title=title, text=strip_title(page.markdown, title)))
        if limit and len(pages) >= limit:
            break
    return pages


@dataclass
class WebReport:
    model: str
    rows: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        n = len(self.rows)
        reasons = Counter(r for row in self.rows for r in row["junk_reasons"])
        junk = sum(1 for row in self.rows if row["junk_reasons"])
        mean = lambda key: round(sum(row[key] for row in self.rows) / n, 4) if n else None  # noqa: E731
        return {
            "model": self.model,
            "pages": n,
            "junk_rate": round(junk / n, 4) if n else None,
            "junk_pages": junk,
            "junk_by_reason": {r: reasons.get(r, 0) for r in REASONS},
            "title_cosine_top1": mean("title_cosine_top1"),
            "title_cosine_first_sentence": mean("title_cosine_baseline"),
            "title_cosine_margin": round(mean("title_cosine_top1") - mean("title_cosine_baseline"), 4) if n else None,
            # Rows written before candidates were kept count their top-1 as their best.
            "title_cosine_best_of": round(
                sum(r.get("title_cosine_best", r["title_cosine_top1"]) for r in self.rows) / n, 4
            )
            if n
            else None,
            "dropped_degenerate_per_page": mean("dropped"),
            "demoted_page_junk_per_page": round(sum(row.get("demoted", 0) for row in self.rows) / n, 4) if n else None,
            "seconds_per_page": mean("seconds"),
        }


def evaluate_pages(
    engine, pages: list[WebPage], details: str | Path | None = None, progress: bool = True, embedder=None
) -> WebReport:
    """Sweep every page, judge its top-1; `engine` may be a function returning one (called only if needed)."""
    from types import SimpleNamespace

    from ..core.engine import InputTruncatedWarning
    from ..core.progress import BatchProgress
    from .metrics import cosine_similarities

    details_path = Path(details) if details else None
    done = {row["file"]: row for row in read_details_rows(details_path)} if details_path else {}
    todo = [p for p in pages if p.file not in done]
    model_name = next(iter(done.values()))["model"] if done else "unknown"
    rows = dict(done)
    if todo:
        if not hasattr(engine, "sweep") and callable(engine):
            engine = engine()
        model_name = getattr(engine, "model_name", "custom")
        bar = BatchProgress(label="web pages", enabled=progress)
        bar.start(len(todo), skipped=len(done))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", InputTruncatedWarning)
                for (_, result), page in zip(
                    engine.sweep_many([p.text for p in todo], kinds=["page"] * len(todo)), todo
                ):
                    prompts = [c.prompt for c in result.candidates] or [""]
                    baseline = first_sentence(page.text)
                    cos_base, *cos_cands = cosine_similarities(
                        [baseline, *prompts], [page.title] * (len(prompts) + 1), embedder
                    )
                    top1, cos_top1 = prompts[0], cos_cands[0]
                    row = {
                        "file": page.file,
                        "model": model_name,
                        "title": page.title,
                        "top1": top1,
                        "baseline": baseline,
                        "junk_reasons": junk_reasons(top1, page.text),
                        "title_cosine_top1": round(cos_top1, 4),
                        "title_cosine_baseline": round(cos_base, 4),
                        # Best of the kept candidates: what a better ranking could reach with these candidates.
                        "title_cosine_best": round(max(cos_cands), 4),
                        "candidates": [
                            {"prompt": c.prompt, "perplexity": round(c.perplexity, 3), "title_cosine": round(cos, 4)}
                            for c, cos in zip(result.candidates, cos_cands)
                        ],
                        "dropped": result.dropped,
                        "demoted": result.demoted,
                        "seconds": round(result.seconds, 3),
                    }
                    rows[page.file] = row
                    if details_path:
                        details_path.parent.mkdir(parents=True, exist_ok=True)
                        with details_path.open("a", encoding="utf-8") as f:
                            f.write(json.dumps(row, ensure_ascii=False) + "\n")
                    bar.advance(SimpleNamespace(status="done", uri=page.file, error=None))
        finally:
            bar.finish()
    return WebReport(model=model_name, rows=[rows[p.file] for p in pages if p.file in rows])


def read_details_rows(path: Path | None) -> list[dict]:
    if path is None or not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a killed run
        if isinstance(row, dict) and "file" in row and "junk_reasons" in row:
            rows.append(row)
    return rows
