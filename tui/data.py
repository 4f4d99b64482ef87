"""What the TUI reads from (and, for pasted text, writes to) a results database.

Connection modes: DuckDB lets one process hold a file read-write, and inside one process a read-only and a
read-write connection to the same file conflict. So the app holds exactly one `Store` at a time: a read-only,
sandboxed one while browsing (other processes may read the file meanwhile, and the SQL screen can neither change
it nor reach any other file: core/sandbox.py), swapped for a read-write one only for the instant a pasted result
is saved (`ResultsDB.writable()`), then back. Closing the sandboxed connection ends its locked settings, which is
why the swap closes it first.

The analysis tabs are the analyzers' own views (core/views.py): nothing here knows a built-in analyzer or its
tables, so a third-party analyzer's tab is built the same way.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..core import analyzers as core_analyzers
from ..core import views as core_views
from ..core.errors import UserError
from ..core.store import Store, open_sandbox
from ..core.types import SweepResult, config_label
from ..core.views import View, ViewData

MATRIX_ROWS = 20  # a heatmap shows its most frequent rows


@dataclass
class Matrix:
    """A `matrix` view's rows as a heatmap: counts of labels (rows, e.g. words) in columns (e.g. candidate ranks)."""

    labels: list[str]
    columns: list
    counts: list[list[int]]
    source: str  # the ViewData's: "table", "candidates" (counted from the prompts) or "fallback"
    label_heading: str = ""
    column_prefix: str = ""

    @property
    def max_count(self) -> int:
        return max((c for row in self.counts for c in row), default=0)

    @classmethod
    def from_view(cls, data: ViewData, top: int = MATRIX_ROWS) -> Matrix:
        """Most frequent label first, then the one found in more columns, then alphabetical (stable)."""
        label, column, value = ([*data.columns, None, None, None])[:3]
        headings = [*data.headings, "", ""]
        counts: dict[str, Counter] = {}
        columns: set = set()
        for row in data.rows:
            col = row.get(column)
            if col is None:
                continue
            columns.add(col)
            name = row.get(label)
            if name is None or name == "":
                continue
            try:
                n = int(row.get(value) or 0) if value else 1
            except (TypeError, ValueError):  # a table of another shape: count the row
                n = 1
            counts.setdefault(str(name), Counter())[col] += n
        ordered = sorted(counts, key=lambda w: (-sum(counts[w].values()), -len(counts[w]), w))[:top]
        cols = sorted(columns, key=lambda c: (str(type(c)), c))
        return cls(
            ordered, cols, [[counts[w].get(c, 0) for c in cols] for w in ordered], data.source, headings[0], headings[1]
        )


@dataclass
class Group:
    """One group of a `groups` view (e.g. an intent cluster) and its member rows."""

    label: str
    rows: list[dict]


def groups_of(data: ViewData) -> list[Group]:
    """A `groups` view's rows by their first column, largest group first, then in order of appearance."""
    key = data.columns[0] if data.columns else None
    groups: dict[str, Group] = {}
    for row in data.rows:
        name = str(row.get(key) if key else "")
        groups.setdefault(name, Group(name, [])).rows.append(row)
    order = list(groups)
    return sorted(groups.values(), key=lambda g: (-len(g.rows), order.index(g.label)))


class ResultsDB:
    """The TUI's window on one results database (see the module docstring for connection modes)."""

    def __init__(self, path: str | Path, views: Sequence[View] | None = None):
        """`views`: what the analysis tabs show (default: the views every registered analyzer declares)."""
        self.path = str(path)
        self._views = None if views is None else list(views)
        self.store = open_sandbox(self.path)
        if not self.has_table("runs") or not self.has_table("documents"):
            self.close()
            raise UserError(f"{self.path} holds no revprompt results (no runs table); run `revprompt analyze` first")

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None

    @contextmanager
    def writable(self) -> Iterator[Store]:
        """Swap the read-only connection for a read-write one for the duration of the block."""
        self.close()
        try:
            with Store(self.path) as store:
                yield store
        finally:
            self.store = open_sandbox(self.path)

    # -- generic ----------------------------------------------------------------------------------------
    def rows(self, sql: str, params: Sequence | None = None) -> list[dict]:
        cols, rows = self.store.query(sql, params)
        return [dict(zip(cols, r)) for r in rows]

    def has_table(self, name: str) -> bool:
        return self.store.has_table(name)

    def columns(self, table: str) -> set[str]:
        return set(self.store.table_columns(table))

    def query(self, sql: str, limit: int = 1000) -> tuple[list[str], list[tuple], int]:
        """Run the SQL screen's one read-only statement; its rows are returned, at most `limit`.

        Returns (columns, rows, total row count). The same sandbox as `revprompt sql` (core/sandbox.py): one
        SELECT-like statement, refused with a one-line UserError otherwise, on a read-only, locked-down connection.
        """
        return self.store.run_one(sql, limit=limit)

    # -- runs, documents, candidates --------------------------------------------------------------------
    def runs(self) -> list[dict]:
        return self.rows(
            """SELECT r.run_id, r.created_at, r.finished_at, r.command, r.target_key, r.model, r.status,
                      count(d.doc_id) AS n_docs,
                      count(d.doc_id) FILTER (WHERE d.status = 'done') AS n_done,
                      count(d.doc_id) FILTER (WHERE d.status = 'failed') AS n_failed,
                      count(d.doc_id) FILTER (WHERE d.status = 'duplicate') AS n_duplicates
               FROM runs r LEFT JOIN documents d ON d.run_id = r.run_id
               GROUP BY ALL ORDER BY r.created_at DESC, r.run_id"""
        )

    def run(self, run_id: str) -> dict | None:
        found = self.rows("SELECT * FROM runs WHERE run_id = ?", [run_id])
        return found[0] if found else None

    def documents(self, run_id: str) -> list[dict]:
        return self.rows(
            """SELECT d.doc_id, d.run_id, d.uri, d.title, d.status, d.error, d.source,
                      min(c.perplexity) AS best_perplexity,
                      arg_min(c.prompt, c.perplexity) AS best_prompt,
                      count(c.candidate_id) AS n_candidates
               FROM documents d LEFT JOIN candidates c ON c.doc_id = d.doc_id
               WHERE d.run_id = ?
               GROUP BY ALL ORDER BY d.doc_id""",
            [run_id],
        )

    def document(self, doc_id: int) -> dict | None:
        found = self.rows("SELECT * FROM documents WHERE doc_id = ?", [doc_id])
        return found[0] if found else None

    def candidates(self, doc_id: int) -> list[dict]:
        out = self.store.candidates(doc_id)
        for cand in out:
            cand["config"] = config_label(cand.get("configs"), cand.get("top_k"), cand.get("penalty_alpha"))
        return out

    def candidate(self, candidate_id: int) -> dict | None:
        found = self.rows("SELECT * FROM candidates WHERE candidate_id = ?", [candidate_id])
        if not found:
            return None
        cand = found[0]
        cand["config"] = config_label(cand.get("configs"), cand.get("top_k"), cand.get("penalty_alpha"))
        return cand

    def tokens(self, candidate_id: int) -> list[dict]:
        return self.store.candidate_tokens(candidate_id)

    # -- the analyzers' views (core/views.py): one tab each, built-in or third-party ----------------------
    def views(self, scope: str | None = None) -> list[View]:
        """The views of the registered analyzers (or those given), `scope` ("document" or "run") only.

        By default the keyword -> pages views of `revprompt match` (screens/keyword_views.py) come last, in a
        database that has their table."""
        if self._views is None:
            from .screens.keyword_views import KEYWORD_VIEWS

            try:
                self._views = core_views.analyzer_views(registered_analyzers())
            except Exception:  # noqa: BLE001 - a broken plugin costs its tabs, never the TUI
                self._views = []
            self._views += [v for v in KEYWORD_VIEWS if all(self.has_table(t) for t in v.tables)]
        return [v for v in self._views if scope is None or v.scope == scope]

    def view(self, view: View, key, candidates: list[dict] | None = None) -> ViewData:
        """One view's rows for a document (`key`: its doc_id; `candidates` let a view count from the prompts)
        or a run (its run_id)."""
        return core_views.read_view(self.store, view, key, candidates)

    # -- the paste screen's write ------------------------------------------------------------------------
    def save_paste(
        self,
        text: str,
        result: SweepResult,
        description: dict | None = None,
        analyzers: Sequence | None = None,
        on_error: Callable[[str], None] | None = None,
        engine=None,
    ) -> tuple[str, int]:
        """Store a pasted text as `revprompt analyze -` stores the same text: a batch over the text source,
        keyed by the same run key (`description`: the app's engine settings, core/analyze_command.py
        `engine_description`). Returns (run_id, doc_id).

        The paste screen sweeps in a worker while this database stays read-only for browsing; the batch then
        runs in the short read-write window with an engine that hands back that sweep (`engine` only sweeps a
        text the batch cleaned into something else). The per-document analyzers (the registered analysis
        plugins by default; `[]` for none) add their rows in the same transaction (core/analyzers.py
        `save_analysed`); one that fails is skipped, reported through `on_error`, and never loses the result.
        Run-level analysis (the site intent map) is left out: one pasted page is no site, and it would load an
        embedding model on the UI thread.
        """
        from ..core.analyze_command import batch_options, engine_description
        from ..core.batch import BatchRunner

        if analyzers is None:
            analyzers = registered_analyzers()
        description = description or engine_description(getattr(engine, "model_name", None))
        swept = _Swept(text, result, engine)
        capture = _WarningCapture(on_error)
        analyzer_log = logging.getLogger(core_analyzers.log.name)
        analyzer_log.addHandler(capture)
        try:
            with self.writable() as store:
                runner = BatchRunner(
                    store,
                    lambda: swept,
                    description,
                    analyzers=list(analyzers),
                    options=batch_options(),
                    run_level_analysis=False,
                )
                summary = runner.run("tui paste", [text], source_name="text")
        finally:
            analyzer_log.removeHandler(capture)
        _, _, doc_id = summary.results[-1] if summary.results else (None, None, None)
        if doc_id is None:  # the run already held this text (an unfinished run of it, resumed)
            _, rows = self.store.query(
                "SELECT doc_id FROM documents WHERE run_id = ? ORDER BY doc_id DESC LIMIT 1", [summary.run_id]
            )
            doc_id = rows[0][0]
        return summary.run_id, doc_id


class _Swept:
    """The app's engine as the paste's batch sees it: the sweep already done in the worker is handed back for
    its text; any other text (none, unless the batch cleaned it) is swept by the engine itself."""

    batch_docs = 1

    def __init__(self, text: str, result: SweepResult, engine=None):
        self.text, self.result, self.engine = text, result, engine

    def sweep(self, text: str, kind: str = "response") -> SweepResult:
        if text == self.text and self.result is not None:
            result, self.result = self.result, None
            return result
        if self.engine is None:
            raise UserError("the pasted text changed before it was stored; paste it again")
        return self.engine.sweep(text, kind)


class _WarningCapture(logging.Handler):
    """Hands the analyzer runner's warnings (an analyzer failed) to the screen instead of stderr."""

    def __init__(self, on_error: Callable[[str], None] | None):
        super().__init__(level=logging.WARNING)
        self.on_error = on_error

    def report(self, message: str) -> None:
        if self.on_error:
            self.on_error(message)

    def emit(self, record: logging.LogRecord) -> None:
        self.report(record.getMessage())


def registered_analyzers() -> list:
    """The analysis plugins, if the plugin machinery can list them (never fatal for the TUI)."""
    try:
        from ..core.plugin_manager import analyzers
    except ImportError:  # pragma: no cover
        return []
    try:
        return list(analyzers())
    except Exception:  # noqa: BLE001 - a broken plugin must not stop the paste screen
        return []
