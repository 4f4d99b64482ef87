"""Drive the registered analyzers through a batch. The batch code (core) calls these three functions:

    analyzers = runner.prepare(store)                       # create every analyzer's tables (idempotent)
    for doc, result in ...:
        store.save_document(run_id, doc, result,
                            plugin_rows=lambda: runner.analyze_document(analyzers, doc, result, run_id))
    failures = runner.finish_run(store, run_id, analyzers)  # run-level analysis (site intent map ...)

An analyzer that raises never costs the document or the batch: its rows are skipped, a warning is logged,
and `finish_run` reports which run-level analyses failed.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from revprompt.core.types import Document, SweepResult

if TYPE_CHECKING:
    from revprompt.core.store import Store

log = logging.getLogger("revprompt.plugins")


def registered_analyzers() -> list:
    """Every analyzer that the built-in and third-party plugins register."""
    from revprompt.core.plugin_manager import analyzers

    return analyzers()


def analyzer_name(analyzer) -> str:
    return getattr(analyzer, "name", None) or type(analyzer).__name__


def prepare(store: "Store", analyzers: Sequence | None = None) -> list:
    """Create the tables of `analyzers` (default: all registered) and return the list to use for the batch."""
    analyzers = list(registered_analyzers() if analyzers is None else analyzers)
    for analyzer in analyzers:
        store.ensure_tables(list(getattr(analyzer, "tables", None) or []))
    return analyzers


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


def finish_run(store: "Store", run_id: str, analyzers: Sequence) -> dict[str, str]:
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
