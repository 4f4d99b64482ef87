"""Word frequencies per candidate: the data behind a words x candidates heatmap.

One row per (candidate, word) with the word's count in that candidate's prompt. Stopwords are kept but
marked, so a heatmap can show content words only (`WHERE NOT stopword`) and still total correctly.
"""

from __future__ import annotations

from collections import Counter

from revprompt.core.analyzers import BaseAnalyzer
from revprompt.core.types import Document, SweepResult

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
