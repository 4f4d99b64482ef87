"""Key phrases shared across a document's candidate prompts.

Every content n-gram (1..4 words, not starting or ending with a stopword) of every candidate is a phrase. A
phrase's weight grows with the number of candidates that carry it and with their confidence:

    weight = sum over carrying candidates c of (0.5 + 0.5 * confidence_c / max confidence)  /  n candidates

so it lies in (0, 1]; 1 means every candidate carries it and they are all as sure as the surest. Each carrier
counts at least half as much as the surest candidate, so a phrase carried by more candidates never ranks
below one carried by fewer (ties at most), and confidence decides between phrases carried equally often.
"""

from __future__ import annotations

from ..core.analyzers import BaseAnalyzer
from ..core.types import Document, SweepResult
from ..core.views import View
from .text import ngrams, words

TABLE = "key_phrases"

DDL = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    doc_id BIGINT NOT NULL,
    run_id VARCHAR,
    phrase VARCHAR NOT NULL,
    n INTEGER NOT NULL,
    weight DOUBLE NOT NULL,
    n_candidates INTEGER NOT NULL,
    share DOUBLE,
    phrase_rank INTEGER,
    maximal BOOLEAN,
    best_candidate_rank INTEGER,
    candidate_ids BIGINT[]
)"""


def key_phrases(candidates, max_n: int = 4, limit: int | None = 50) -> list[dict]:
    """Phrase rows for one document's candidates (objects with .prompt, .confidence, .rank, .candidate_id).

    Row keys: phrase, n, weight, n_candidates, share, phrase_rank, maximal, best_candidate_rank, candidate_ids.
    """
    cands = [c for c in candidates if c.prompt and c.prompt.strip()]
    if not cands:
        return []
    max_conf = max(c.confidence for c in cands) or 1.0
    unit = [0.5 + 0.5 * (c.confidence / max_conf if max_conf > 0 else 1.0) for c in cands]

    carriers: dict[tuple[str, ...], set[int]] = {}
    for i, cand in enumerate(cands):
        for gram in set(ngrams(words(cand.prompt), max_n=max_n)):
            carriers.setdefault(gram, set()).add(i)

    # A phrase is not maximal when a longer phrase containing it is carried by exactly the same candidates
    # ("capital" inside "capital of france" everywhere): UIs can hide it.
    not_maximal: set[tuple[str, ...]] = set()
    for gram, who in carriers.items():
        for n in range(1, len(gram)):
            for i in range(len(gram) - n + 1):
                sub = gram[i : i + n]
                if sub in carriers and carriers[sub] == who:
                    not_maximal.add(sub)

    total = len(cands)
    rows = []
    for gram, who in carriers.items():
        idx = sorted(who)
        rows.append(
            {
                "phrase": " ".join(gram),
                "n": len(gram),
                "weight": sum(unit[i] for i in idx) / total,
                "n_candidates": len(idx),
                "share": len(idx) / total,
                "maximal": gram not in not_maximal,
                "best_candidate_rank": min((cands[i].rank for i in idx), default=None),
                "candidate_ids": [cands[i].candidate_id for i in idx if cands[i].candidate_id is not None],
            }
        )
    rows.sort(key=lambda r: (-r["weight"], -r["n"], r["phrase"]))
    if limit is not None:
        rows = rows[:limit]
    for rank, row in enumerate(rows, start=1):
        row["phrase_rank"] = rank
    return rows


class KeyPhrasesAnalyzer(BaseAnalyzer):
    name = "key_phrases"
    description = "n-grams shared across a document's candidates, weighted by how many carry them and their confidence"
    tables = [DDL]

    def __init__(self, max_n: int = 4, limit: int | None = 50):
        self.max_n = max_n
        self.limit = limit

    def analyze_document(self, doc: Document, result: SweepResult, run_id: str | None = None) -> dict[str, list[dict]]:
        rows = key_phrases(result.candidates, max_n=self.max_n, limit=self.limit)
        return {TABLE: [{"run_id": run_id, **r} for r in rows]}

    def views(self) -> list[View]:
        return [
            View(
                title="Key phrases",
                key="k",
                label="Phrases",
                sql=f"""SELECT phrase, weight, n, n_candidates FROM {TABLE} WHERE doc_id = $doc_id
                     ORDER BY weight DESC NULLS LAST, phrase LIMIT 100""",
                columns={"phrase": "Phrase", "weight": "Weight", "n": "n-gram", "n_candidates": "Candidates"},
            )
        ]
