"""The analyzer contract and the runner that drives analyzers through a batch; the one way a document is saved.

What an analysis plugin is: an object that reads a document's ranked candidates and fills its own DuckDB
tables. Plugins hand instances to the `register_analyzers(register)` hook (core/hookspecs.py); the built-in
ones live in revprompt/plugins/. The contract lives here, in core, because the engine's batch calls it: core
must not import the packages above it (tests/test_architecture.py).

Life of an analyzer in a batch:

1. `prepare(store, analyzers)`: `store.ensure_tables(analyzer.tables)` before the first document (an analyzer
   whose tables cannot be created is left out, with a warning);
2. `save_analysed(store, run_id, doc, result, analyzers)` for every document: for one that was analysed
   (status 'done', a SweepResult in hand) each `analyze_document(doc, result, run_id)` returns rows per table,
   inserted in the same transaction as the document, with `doc_id` filled where a row leaves it out;
   `candidate.candidate_id` is already set;
3. `finish_run(store, run_id, analyzers)`: each `analyze_run(store, run_id)` for run-level tables (it should
   replace that run's rows, so a resumed or repeated run never duplicates them).

Per-document tables should carry a `doc_id BIGINT` column: it joins them to documents and candidates, and the
store deletes a document's rows from every table with that column when the document is re-analysed.

An analyzer that raises never costs the document or the batch: its rows are skipped and a warning is logged
on the `revprompt.analyzers` logger (the TUI shows those warnings on its paste screen).

The read side, optional: `views()` returns how the analyzer's tables are shown (core/views.py `View`: a title,
one SELECT for a document or a run, a layout); the TUI builds a tab for each, third-party analyzers included.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import duckdb

from .types import Document, SweepResult

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger("revprompt.analyzers")


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

    def analyze_run(self, store: Store, run_id: str) -> None:
        """Run-level analysis after a batch (e.g. the site intent map); may be a no-op."""

    # Optional (not part of the protocol, so analyzers written before it still match):
    #     def views(self) -> list[View | dict]: how the analyzer's tables are shown (core/views.py).


class BaseAnalyzer:
    """Convenience base class: no tables, no rows, no run-level work. Override what you need."""

    name: str = "unnamed"
    description: str = ""
    tables: list[str] = []

    def analyze_document(self, doc: Document, result: SweepResult, run_id: str | None = None) -> dict[str, list[dict]]:
        return {}

    def analyze_run(self, store: Store, run_id: str) -> None:
        return None

    def views(self) -> list:
        """How this analyzer's tables are shown (core/views.py `View`s, or dicts of their fields); none here."""
        return []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def registered_analyzers() -> list:
    """Every analyzer that the built-in and third-party plugins register."""
    from .plugin_manager import analyzers

    return analyzers()


def analyzer_name(analyzer) -> str:
    return getattr(analyzer, "name", None) or type(analyzer).__name__


def prepare(store: Store, analyzers: Sequence | None = None) -> list:
    """Create the tables of `analyzers` (default: all registered) and return those to use for the batch.

    One whose tables cannot be created (bad SQL, a clash with another table) is left out with a warning: a
    broken plugin must not stop the batch."""
    usable = []
    for analyzer in list(registered_analyzers() if analyzers is None else analyzers):
        try:
            store.ensure_tables(list(getattr(analyzer, "tables", None) or []))
        except Exception as exc:  # noqa: BLE001
            log.warning("%s: %s: %s (left out of this run)", analyzer_name(analyzer), type(exc).__name__, exc)
            continue
        usable.append(analyzer)
    return usable


def _accepts_run_id(method) -> bool:
    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return (
        any(p.name == "run_id" for p in params)
        or any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params)
        or len(positional) >= 3
    )


def analyze_document(
    analyzers: Sequence, doc: Document, result: SweepResult | None, run_id: str | None = None
) -> dict[str, list[dict]]:
    """Rows per table from every analyzer for one document, merged (tables shared by analyzers concatenate).

    Documents without a result (failed) give no rows. Rows of one table are padded to the same columns so
    the store can insert them in one statement."""
    if result is None or doc.status == "failed":
        return {}
    merged: dict[str, list[dict]] = {}
    for analyzer in analyzers:
        method = getattr(analyzer, "analyze_document", None)
        if method is None:
            continue
        try:
            rows = method(doc, result, run_id) if _accepts_run_id(method) else method(doc, result)
            for table, table_rows in (rows or {}).items():
                merged.setdefault(table, []).extend(dict(r) for r in table_rows)
        except Exception as exc:  # an analyzer bug must not lose the document
            log.warning("analyzer %s failed on %s: %s: %s", analyzer_name(analyzer), doc.uri, type(exc).__name__, exc)
    for table, rows in merged.items():
        columns: dict[str, None] = {}
        for row in rows:
            columns.update(dict.fromkeys(row))
        merged[table] = [{c: row.get(c) for c in columns} for row in rows]
    return {t: rows for t, rows in merged.items() if rows}


def save_analysed(
    store: Store, run_id: str, doc: Document, result: SweepResult | None, analyzers: Sequence = ()
) -> int:
    """Store one document, its candidates and its analyzers' rows in one transaction; returns its doc_id.

    This is the one way a document enters the store (the batch, the TUI's paste through the batch, and the
    test helpers all come here), so every path keeps the same rows and the same fallbacks:

    - rows an analyzer returns that its table refuses (a table left by an older plugin version) roll back;
      the document is stored again with its candidates, without analysis rows, and a warning says so;
    - a document the store itself refuses loses its content and is stored as failed, so a batch never stops
      at the same document on every re-run (the caller sees `doc.status == 'failed'`).
    """
    rows = None
    if result is not None and analyzers:
        rows = lambda: analyze_document(analyzers, doc, result, run_id)  # noqa: E731
    try:
        return store.save_document(run_id, doc, result, rows)
    except duckdb.Error as exc:
        error = exc
    if rows is not None:
        log.warning("analysis rows not stored for %s: %s", doc.uri, _first_line(error))
        try:
            return store.save_document(run_id, doc, result, None)
        except duckdb.Error as exc:
            error = exc
    log.debug("storing %s failed", doc.uri, exc_info=error)
    doc.text, doc.title, doc.description, doc.meta = "", None, None, {}
    doc.failed("cannot store the document: " + _first_line(error))
    return store.save_document(run_id, doc, None, None)


def finish_run(store: Store, run_id: str, analyzers: Sequence) -> dict[str, str]:
    """Run every analyzer's run-level step; returns {analyzer name: error} for those that failed."""
    failures: dict[str, str] = {}
    for analyzer in analyzers:
        method = getattr(analyzer, "analyze_run", None)
        if method is None:
            continue
        try:
            method(store, run_id)
        except Exception as exc:
            name = analyzer_name(analyzer)
            failures[name] = f"{type(exc).__name__}: {exc}"
            log.warning("run-level analysis %s failed for run %s: %s", name, run_id, failures[name])
    return failures


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
