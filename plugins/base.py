"""What an analysis plugin is: it reads a document's ranked candidates and fills its own DuckDB tables.

An analyzer is any object with the attributes and methods of `Analyzer` below; a plugin hands instances to
the `register_analyzers(register)` hook. `BaseAnalyzer` gives no-op defaults to subclass from (optional).

Life of an analyzer in a batch (see revprompt.plugins.runner, which the batch code calls):

1. `store.ensure_tables(analyzer.tables)` before the first document;
2. for every document that was analysed (status 'done', a SweepResult in hand):
   `analyze_document(doc, result, run_id)` -> rows per table. The store inserts them in the same transaction
   as the document, filling `doc_id` when a row leaves it out; `candidate.candidate_id` is already set;
3. after the batch: `analyze_run(store, run_id)` for run-level tables (it should replace that run's rows so
   a resumed or repeated run never duplicates them).

Per-document tables should carry a `doc_id BIGINT` column: it joins them to documents and candidates, and the
store deletes a document's rows from every table with that column when the document is re-analysed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from revprompt.core.types import Document, SweepResult

if TYPE_CHECKING:
    from revprompt.core.store import Store


@runtime_checkable
class Analyzer(Protocol):
    #: short unique name shown by `revprompt plugins`
    name: str
    #: one line for `revprompt plugins`
    description: str
    #: `CREATE TABLE IF NOT EXISTS ...` statements for this analyzer's tables
    tables: list[str]

    def analyze_document(self, doc: Document, result: SweepResult, run_id: str | None = None) -> dict[str, list[dict]]:
        """Rows per table for one analysed document. Candidates already carry their candidate_id.

        (Analyzers written against the first protocol, `analyze_document(doc, result)`, still work: the runner
        passes `run_id` only to methods that accept it.)"""

    def analyze_run(self, store: "Store", run_id: str) -> None:
        """Run-level analysis after a batch (e.g. the site intent map); may be a no-op."""


class BaseAnalyzer:
    """Convenience base class: no tables, no rows, no run-level work. Override what you need."""

    name: str = "unnamed"
    description: str = ""
    tables: list[str] = []

    def analyze_document(self, doc: Document, result: SweepResult, run_id: str | None = None) -> dict[str, list[dict]]:
        return {}

    def analyze_run(self, store: "Store", run_id: str) -> None:
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
