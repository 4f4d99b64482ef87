"""Word frequencies per candidate: the data behind a words x candidates heatmap.

One row per (candidate, word) with the word's count in that candidate's prompt. Stopwords are kept but
marked, so a heatmap can show content words only (`WHERE NOT stopword`) and still total correctly.
"""

from __future__ import annotations

from collections import Counter

from ..core.analyzers import BaseAnalyzer
from ..core.types import Document, SweepResult
from ..core.views import View
from .text import is_stopword, words

TABLE = "word_frequencies"

DDL = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    doc_id BIGINT NOT NULL,
    candidate_id BIGINT,
    run_id VARCHAR,
    word VARCHAR NOT NULL,
    count INTEGER NOT NULL,
    candidate_rank INTEGER,
    stopword BOOLEAN
)"""


def word_counts(prompt: str) -> Counter:
    return Counter(words(prompt))


def heatmap_rows(candidates: list[dict]) -> list[dict]:
    """The heatmap's rows counted from stored candidates (dicts with `rank` and `prompt`) the way the analyzer
    counts them, content words only; a row with no word keeps a candidate's column."""
    rows = [{"word": None, "candidate_rank": c["rank"], "count": 0} for c in candidates]
    for cand in candidates:
        rows += [
            {"word": word, "candidate_rank": cand["rank"], "count": count}
            for word, count in word_counts(cand.get("prompt") or "").items()
            if not is_stopword(word)
        ]
    return rows


class WordFrequencyAnalyzer(BaseAnalyzer):
    name = "word_frequency"
    description = "word counts per candidate prompt (words x candidates heatmap)"
    tables = [DDL]

    def analyze_document(self, doc: Document, result: SweepResult, run_id: str | None = None) -> dict[str, list[dict]]:
        rows = []
        for cand in result.candidates:
            for word, count in sorted(word_counts(cand.prompt).items(), key=lambda kv: (-kv[1], kv[0])):
                rows.append(
                    {
                        "candidate_id": cand.candidate_id,
                        "run_id": run_id,
                        "word": word,
                        "count": count,
                        "candidate_rank": cand.rank,
                        "stopword": is_stopword(word),
                    }
                )
        return {TABLE: rows}

    def views(self) -> list[View]:
        # Every candidate of the document is a column (LEFT JOIN), so one without content words still shows.
        return [
            View(
                title="Heatmap",
                key="h",
                kind="matrix",
                sql=f"""SELECT w.word, c.rank AS candidate_rank, w.count
                     FROM candidates c LEFT JOIN {TABLE} w
                       ON w.candidate_id = c.candidate_id AND NOT coalesce(w.stopword, false)
                     WHERE c.doc_id = $doc_id ORDER BY c.rank""",
                columns={"word": "word", "candidate_rank": "#", "count": "count"},
                note="Words × candidates ({source}); columns are candidate ranks.",
                empty="no words to count (no candidates)",
                tables=(TABLE,),
                from_candidates=heatmap_rows,
            )
        ]
