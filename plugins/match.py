"""Keyword–page matching: which analysed page answers a keyword, is it clear-cut, is there one at all (issue #17).

The model says which question a page answers; matching asks the converse. For each keyword:

1. **Shortlist** the pages by MiniLM cosine between the keyword and the page (title + the start of its text, the
   same offline all-MiniLM-L6-v2 the site intent map uses, plugins/embeddings.py). Page vectors are cached in
   `page_embeddings`, keyed by the text they were made from.
2. **Re-rank** the shortlist by the reverse model's mean NLL of the keyword as the prompt given the page
   (core/keyword_scoring.py): "query likelihood" in IR terms, the measure that ranks candidate prompts. Lower is
   better. For one keyword every page is scored on the same tokens, so mean and total NLL rank alike.
3. **Judge** the winner: the margin to the runner-up (two pages within `CANNIBALISATION_MARGIN` that both answer
   compete for the keyword: cannibalisation), and whether the best NLL is past `NO_PAGE_NLL` ("no page answers
   this").

Both thresholds were calibrated on dev pairs with the shipped adapter; see `CALIBRATION` below and
docs/queries.md. Other models (`--model base`, your own) score on another scale: set them with
`--no-page-nll` / `--margin`.

Results go to `keyword_matches` (one row per keyword x scored page; core/store.py migration 3).
"""

from __future__ import annotations

import hashlib
import logging
import math
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..core.errors import UserError
from ..core.types import utcnow

if TYPE_CHECKING:
    from ..core.engine import Engine
    from ..core.store import Store

log = logging.getLogger("revprompt.match")

EMBEDDING_MODEL = "all-MiniLM-L6-v2"
EMBED_CHARS = 2000  # MiniLM reads 256 word pieces; more text is only tokenised to be thrown away
DEFAULT_SHORTLIST = 10

# -- calibration ----------------------------------------------------------------------------------------------
# How the two thresholds were set (bench/bench_match.py prints these numbers on every run):
#
# On 300 dev pairs (../shared/data/dev/dev600.jsonl, the first 300 with distinct prompt and response: responses
# as pages, prompts as keywords), shipped adapter, default window:
# - "true" NLL: each keyword scored on its own page;
# - "absent" NLL: each keyword's best score over its MiniLM shortlist with its own page left out, i.e. what the
#   best page scores when the page that answers the keyword is missing.
# NO_PAGE_NLL is the equal-error threshold between the two: as many true pairs score above it (a page that
# answers, called "no page") as absent keywords score below it (no page, called answered).
# CANNIBALISATION_MARGIN: below this margin between the best and the runner-up, re-ranking picks the right page
# no more often than about one time in two on the dev pairs (the model cannot tell the two pages apart).
# Measured 2026-11-28 (bench/RESULTS.md "Session 25"; the shipped page adapter s28p, which scores keywords on a
# page, window 256, bf16): true-pair NLL p50 2.50 / p90 4.14; best-absent NLL p10 2.90 / p50 4.11; equal error at
# 3.40 (22.3% each way; on the 86 short prompts of <= 11 tokens: 3.51, 15.1% each way). Re-ranked top-1 by margin:
# 50% below 0.05, 60% in [0.05, 0.1), 86% in [0.1, 0.4), 99.6% above 0.4; the bench's rule gives 0.1, so 0.2 stays
# (the cautious side). (Session 24, page adapter s27: 3.35 and 0.2; session 22, s24: 3.29 and 0.2; 2026-11-26, the
# chat adapter of that day at 128 tokens: 3.07 and 0.2.) Re-run the bench and update these when the shipped adapter
# changes.
NO_PAGE_NLL = 3.40
CANNIBALISATION_MARGIN = 0.2
CALIBRATED_MODEL = "shipped"
CALIBRATION = {
    "data": "../shared/data/dev/dev600.jsonl, first 300 pairs with distinct prompt and response",
    "model": CALIBRATED_MODEL,
    "no_page_nll": "equal-error threshold between true-pair NLL and best-absent NLL",
    "cannibalisation_margin": "margin below which re-ranked top-1 accuracy is ~50%",
}


@dataclass
class Page:
    """A document that can answer keywords: its stored text is what the model reads (as `analyze` did)."""

    uri: str
    text: str
    title: str | None = None
    doc_id: int | None = None
    run_id: str | None = None

    def embedding_text(self) -> str:
        head = f"{self.title}\n" if self.title and self.title.strip() not in self.text[:200] else ""
        return (head + self.text)[:EMBED_CHARS]


@dataclass
class Scored:
    page: int  # index into the pages
    nll: float
    cosine: float
    cosine_rank: int  # 1 = the page nearest the keyword by MiniLM


@dataclass
class KeywordResult:
    keyword: str
    scored: list[Scored]  # every page scored for the keyword, best (lowest NLL) first
    no_page_nll: float
    margin_threshold: float
    gsc_pages: dict[int, float] = field(default_factory=dict)  # page index -> GSC impressions for this keyword
    google_page: int | None = None  # the page Google shows most for it (by impressions), when known

    @property
    def best(self) -> Scored | None:
        return self.scored[0] if self.scored else None

    @property
    def runner_up(self) -> Scored | None:
        return self.scored[1] if len(self.scored) > 1 else None

    @property
    def margin(self) -> float | None:
        if self.best is None or self.runner_up is None:
            return None
        return self.runner_up.nll - self.best.nll

    @property
    def answered(self) -> bool:
        return self.best is not None and self.best.nll <= self.no_page_nll

    @property
    def cannibalisation(self) -> bool:
        """Two pages answer and the model can barely tell which answers better."""
        return (
            self.answered
            and self.runner_up is not None
            and self.runner_up.nll <= self.no_page_nll
            and self.margin is not None
            and self.margin < self.margin_threshold
        )

    def scored_page(self, page: int) -> Scored | None:
        return next((s for s in self.scored if s.page == page), None)


# -- pages and their vectors ------------------------------------------------------------------------------------
def load_pages(store: Store, run_id: str | None = None) -> list[Page]:
    """The analysed documents with text (failed and duplicate ones left out), one per URI: the latest analysis
    of a page analysed in several runs. `run_id` keeps one run's."""
    if run_id is not None and store.get_run(run_id) is None:
        raise UserError(f'no run {run_id} in {store.path} (see: revprompt sql "SELECT run_id, command FROM runs")')
    where, params = ("AND run_id = ?", [run_id]) if run_id else ("", [])
    _, rows = store.query(
        f"""SELECT doc_id, run_id, uri, title, text FROM documents
            WHERE status = 'done' AND text IS NOT NULL AND length(trim(text)) > 0 {where}
            ORDER BY doc_id""",
        params,
    )
    latest: dict[str, Page] = {}
    for doc_id, run, uri, title, text in rows:
        latest[uri] = Page(uri=uri, text=text, title=title, doc_id=doc_id, run_id=run)  # later doc_ids win
    return sorted(latest.values(), key=lambda p: p.doc_id or 0)


def _text_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


def page_vectors(
    pages: Sequence[Page], embed: Callable[[Sequence[str]], np.ndarray], store: Store | None = None
) -> np.ndarray:
    """MiniLM vectors of the pages, from `page_embeddings` where the same text was embedded before."""
    texts = [p.embedding_text() for p in pages]
    hashes = [_text_hash(t) for t in texts]
    cached: dict[tuple[int, str], list[float]] = {}
    if store is not None and store.has_table("page_embeddings"):
        _, rows = store.query(
            "SELECT doc_id, text_hash, embedding FROM page_embeddings WHERE model = ?", [EMBEDDING_MODEL]
        )
        cached = {(doc_id, h): emb for doc_id, h, emb in rows}
    vectors: list[np.ndarray | None] = [
        np.asarray(cached[(p.doc_id, h)], dtype=np.float32) if (p.doc_id, h) in cached else None
        for p, h in zip(pages, hashes)
    ]
    missing = [i for i, v in enumerate(vectors) if v is None]
    if missing:
        fresh = np.asarray(embed([texts[i] for i in missing]), dtype=np.float32)
        for i, v in zip(missing, fresh):
            vectors[i] = v
        if store is not None and store.has_table("page_embeddings"):
            _cache_vectors(
                store, [(pages[i].doc_id, hashes[i], vectors[i]) for i in missing if pages[i].doc_id is not None]
            )
    if not pages:
        return np.zeros((0, 0), dtype=np.float32)
    return _unit(np.stack(vectors))


def _cache_vectors(store: Store, new: list[tuple[int, str, np.ndarray]]) -> None:
    """Store fresh page vectors (set-based: thousands of pages must not take thousands of statements)."""
    if not new:
        return
    import pyarrow as pa

    table = pa.table(
        {
            "doc_id": pa.array([d for d, _, _ in new], pa.int64()),
            "model": pa.array([EMBEDDING_MODEL] * len(new), pa.string()),
            "text_hash": pa.array([h for _, h, _ in new], pa.string()),
            "embedding": pa.array([v.astype(np.float32).tolist() for _, _, v in new], pa.list_(pa.float32())),
        }
    )
    with store.transaction(), store.registered("_revprompt_page_vectors", table):
        store.execute(
            "DELETE FROM page_embeddings WHERE model = ? AND doc_id IN (SELECT doc_id FROM _revprompt_page_vectors)",
            [EMBEDDING_MODEL],
        )
        store.execute(
            "INSERT INTO page_embeddings (doc_id, model, text_hash, embedding) "
            "SELECT doc_id, model, text_hash, embedding FROM _revprompt_page_vectors"
        )


def _unit(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float32)
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)


def default_embed(texts: Sequence[str]) -> np.ndarray:
    from . import embeddings  # looked up at call time: tests swap in a cheap stand-in

    return embeddings.embed(texts)


# -- matching -------------------------------------------------------------------------------------------------
class Matcher:
    """Shortlist by cosine, re-rank by NLL. `engine` is a core Engine (its model, tokenizer and window)."""

    def __init__(
        self,
        engine: Engine,
        shortlist: int = DEFAULT_SHORTLIST,
        no_page_nll: float = NO_PAGE_NLL,
        margin: float = CANNIBALISATION_MARGIN,
        embed: Callable[[Sequence[str]], np.ndarray] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ):
        from ..core.keyword_scoring import ScoringStats

        if shortlist < 1:
            raise UserError("--shortlist must be at least 1")
        self.engine = engine
        self.shortlist = shortlist
        self.no_page_nll = no_page_nll
        self.margin = margin
        self.embed = embed or default_embed
        self.progress = progress
        self.stats = ScoringStats()
        self.last_cosines: np.ndarray | None = None

    def shortlists(self, cosines: np.ndarray) -> np.ndarray:
        """(K, n) page indices, nearest first, n = min(shortlist, pages)."""
        n = min(self.shortlist, cosines.shape[1])
        if n == cosines.shape[1]:
            return np.argsort(-cosines, axis=1, kind="stable")
        top = np.argpartition(-cosines, n - 1, axis=1)[:, :n]
        order = np.argsort(-np.take_along_axis(cosines, top, axis=1), axis=1, kind="stable")
        return np.take_along_axis(top, order, axis=1)

    def match(
        self,
        keywords: Sequence[str],
        pages: Sequence[Page],
        vectors: np.ndarray | None = None,
        extra_pairs: dict[int, Iterable[int]] | None = None,
    ) -> list[KeywordResult]:
        """One result per keyword. `extra_pairs` (keyword index -> page indices) are scored besides the
        shortlist (the pages Search Console shows for a query)."""
        if not keywords:
            return []
        if not pages:
            raise UserError("no pages to match keywords against")
        vectors = page_vectors(pages, self.embed) if vectors is None else vectors
        cosines = _unit(self.embed(list(keywords))) @ vectors.T  # (K, P)
        self.last_cosines = cosines  # for benchmarks: the MiniLM ranking the shortlist came from
        wanted: dict[int, set[int]] = {k: set(row.tolist()) for k, row in enumerate(self.shortlists(cosines))}
        for k, extra in (extra_pairs or {}).items():
            wanted[k].update(extra)
        nlls = self.score(keywords, pages, wanted)
        results = []
        for k, keyword in enumerate(keywords):
            row = cosines[k]
            scored = [Scored(p, nlls[(k, p)], float(row[p]), int((row > row[p]).sum()) + 1) for p in wanted[k]]
            scored.sort(key=lambda s: (s.nll, s.cosine_rank))
            results.append(KeywordResult(keyword, scored, self.no_page_nll, self.margin))
        return results

    def score(
        self,
        keywords: Sequence[str],
        pages: Sequence[Page],
        wanted: dict[int, set[int]],
        page_by_page: bool = False,
    ) -> dict[tuple[int, int], float]:
        """NLL of every wanted (keyword, page) pair. Each keyword and page is tokenised once; the pages go
        through the model in packed groups, each page's prefix encoded once and all its keywords scored on it
        (core/keyword_scoring.py `score_pages`). `page_by_page` takes the previous path, one page per forward
        (the same scores; bench/bench_match.py times the two)."""
        from ..core.keyword_scoring import score_encoded_page_by_page, score_pages
        from ..core.prompt_format import encode_prefix, encode_prompt

        by_page: dict[int, list[int]] = {}
        for k, page_set in wanted.items():
            for p in sorted(page_set):
                by_page.setdefault(p, []).append(k)
        order = sorted(by_page)
        engine = self.engine.for_kind("page")  # the page adapter, when the model ships one
        tokenizer = engine.tokenizer
        encoded: dict[int, list[int]] = {}
        for k in sorted({k for ks in by_page.values() for k in ks}):
            encoded[k] = encode_prompt(tokenizer, keywords[k], engine.max_new_tokens)
        jobs = [
            (
                # a page, read as the model was trained to read pages (core/prompt_format.py PAGE_SEPARATOR)
                encode_prefix(tokenizer, pages[p].text, engine.max_input_tokens, engine.separator("page")).ids,
                [encoded[k] for k in by_page[p]],
            )
            for p in order
        ]
        if page_by_page:
            values = []
            for done, (prefix, continuations) in enumerate(jobs, start=1):
                values.append(score_encoded_page_by_page(engine.model, prefix, continuations, stats=self.stats))
                if self.progress:
                    self.progress(done, len(jobs))
        else:
            values = score_pages(engine.model, jobs, stats=self.stats, progress=self.progress)
        out: dict[tuple[int, int], float] = {}
        for p, page_values in zip(order, values):
            for k, v in zip(by_page[p], page_values):
                out[(k, p)] = v
        return out


def read_keywords(text: str, name: str) -> list[str]:
    """Keywords from a file's text: one a line ('#' starts a comment line), or a CSV whose header has a
    keyword / query column (keyword tools' and Search Console's exports). Duplicates are dropped."""
    from ..sources.tabular import find_column, parse_csv

    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise UserError(f"{name} lists no keywords")
    header, rows, _ = parse_csv(text, name)
    column = find_column(header, KEYWORD_COLUMNS)
    if column is not None:  # a CSV export with a header
        keywords = [row[column] for row in rows if column < len(row)]
    else:  # one keyword a line (a comma is part of the keyword)
        keywords = [line for line in lines if not line.lstrip().startswith("#")]
    if not unique_keywords(keywords):
        raise UserError(f"{name} lists no keywords")
    return unique_keywords(keywords)


KEYWORD_COLUMNS = ("keyword", "keywords", "query", "queries", "top queries", "search query", "search term")


def unique_keywords(keywords: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for keyword in keywords:
        keyword = " ".join(str(keyword).split())
        if keyword and keyword not in seen:
            seen.add(keyword)
            out.append(keyword)
    return out


# -- storing ----------------------------------------------------------------------------------------------------
MATCH_COLUMNS = (
    "run_id",
    "keyword",
    "doc_id",
    "rank",
    "nll",
    "cosine",
    "cosine_rank",
    "gap",
    "margin",
    "answers",
    "cannibalisation",
    "gsc_page",
    "impressions",
    "uri",
    "match_id",
    "model",
    "created_at",
)


def match_rows(results: Sequence[KeywordResult], pages: Sequence[Page], match_id: str, model: str) -> list[tuple]:
    now = utcnow()
    rows = []
    for r in results:
        best = r.best
        for rank, s in enumerate(r.scored, start=1):
            page = pages[s.page]
            rows.append(
                (
                    page.run_id,
                    r.keyword,
                    page.doc_id,
                    rank,
                    _finite(s.nll),
                    _finite(s.cosine),
                    s.cosine_rank,
                    _finite(s.nll - best.nll),
                    _finite(r.margin) if rank == 1 else None,
                    s.nll <= r.no_page_nll,
                    r.cannibalisation if rank <= 2 else False,
                    s.page == r.google_page if r.google_page is not None else None,
                    r.gsc_pages.get(s.page),
                    page.uri,
                    match_id,
                    model,
                    now,
                )
            )
    return rows


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def save_matches(store: Store, results: Sequence[KeywordResult], pages: Sequence[Page], model: str) -> str:
    """Store the results in `keyword_matches`, replacing earlier rows for the same keywords and runs. The match_id."""
    import pyarrow as pa

    match_id = uuid.uuid4().hex[:12]
    rows = match_rows(results, pages, match_id, model)
    runs = sorted({p.run_id for p in pages if p.run_id})
    keywords = sorted({r.keyword for r in results})
    table = pa.table({c: [row[i] for row in rows] for i, c in enumerate(MATCH_COLUMNS)})
    with store.transaction():
        if runs and keywords:
            old = pa.table({"keyword": keywords})
            with store.registered("_revprompt_match_keywords", old):
                store.execute(
                    f"DELETE FROM keyword_matches WHERE run_id IN ({', '.join('?' * len(runs))}) "
                    "AND keyword IN (SELECT keyword FROM _revprompt_match_keywords)",
                    runs,
                )
        if rows:
            with store.registered("_revprompt_match_rows", table):
                store.execute(
                    f"INSERT INTO keyword_matches ({', '.join(MATCH_COLUMNS)}) "
                    f"SELECT {', '.join(MATCH_COLUMNS)} FROM _revprompt_match_rows"
                )
    return match_id


def result_json(r: KeywordResult, pages: Sequence[Page]) -> dict:
    def page(s: Scored | None) -> dict | None:
        if s is None:
            return None
        p = pages[s.page]
        out = {
            "uri": p.uri,
            "doc_id": p.doc_id,
            "title": p.title,
            "nll": round(s.nll, 4),
            "cosine": round(s.cosine, 4),
            "cosine_rank": s.cosine_rank,
        }
        if s.page in r.gsc_pages:
            out["impressions"] = r.gsc_pages[s.page]
        return out

    out = {
        "keyword": r.keyword,
        "best": page(r.best),
        "runner_up": page(r.runner_up),
        "margin": None if r.margin is None else round(r.margin, 4),
        "answered": r.answered,
        "cannibalisation": r.cannibalisation,
    }
    if r.google_page is not None:
        out["google_page"] = page(r.scored_page(r.google_page))
    return out
