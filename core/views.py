"""The read side of an analyzer: how its results are shown (datasette's facets and renderers, for revprompt).

An analyzer fills its own tables (core/analyzers.py); its `views()` method says how those tables are read back
for a person: a title, one SELECT over its tables and a layout. The TUI builds a tab for every view of every
registered analyzer, built-in or third-party, without knowing any of them by name:

    from .. import View

    class PromptLengths(BaseAnalyzer):
        ...
        def views(self):
            return [View(
                title="Prompt lengths",
                sql="SELECT c.rank, s.n_words FROM sample_prompt_lengths s JOIN candidates c USING (candidate_id) "
                    "WHERE s.doc_id = $doc_id ORDER BY c.rank",
                columns={"rank": "#", "n_words": "Words"},
            )]

A view's `scope` is `document` (a tab of the document screen; its SQL gets `$doc_id`) or `run` (a tab of the
run's analysis screen; its SQL gets `$run_id`). Its `kind` is how the rows are laid out:

- `table`: one row per row, the `columns` in order (all the SQL returns but ids when `columns` is empty);
- `matrix`: a heatmap of (row label, column, count) rows, the first three columns; counts of the same cell add
  up; a row whose label is NULL only adds its (empty) column, so every candidate shows even without words;
- `groups`: a tree of (group label, member, detail) rows, the first three columns; groups largest first.

`doc_column` names a column holding a doc_id: Enter on that row opens the document. A view may be a `View` or
a plain dict with the same keys. Views are read on the caller's connection, which for the TUI is read-only and
sandboxed (core/sandbox.py).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING

from .errors import UserError

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger("revprompt.views")

SCOPES = ("document", "run")
KINDS = ("table", "matrix", "groups")
PARAMETER = {"document": "doc_id", "run": "run_id"}
FALLBACK_LIMIT = 1000
_TABLE_NAME = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:TABLE|VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?\"?([\w.]+)", re.IGNORECASE
)


@dataclass(frozen=True)
class View:
    """How one analyzer's results are shown: a tab in the TUI."""

    #: the tab's label
    title: str
    #: one SELECT over the analyzer's tables; `$doc_id` (scope `document`) or `$run_id` (scope `run`) is bound
    sql: str
    #: `document` or `run`
    scope: str = "document"
    #: `table`, `matrix` or `groups` (see the module docstring)
    kind: str = "table"
    #: column -> heading, in the order shown; empty: every column the SQL returns, ids left out
    columns: Mapping[str, str] = field(default_factory=dict)
    #: a one-letter keyboard shortcut for the tab (taken only where the screen has it free)
    key: str | None = None
    #: the shortcut's name in the footer (default: the title)
    label: str | None = None
    #: a line shown above the rows; `{source}`, `{rows}` and `{groups}` are filled in
    note: str = ""
    #: shown when there are no rows (default: "no <title> for this document/run")
    empty: str = ""
    #: the tables the SQL reads (default: the analyzer's): while one is missing the analyzer has not run yet
    tables: tuple[str, ...] = ()
    #: a column holding a doc_id: Enter on the row opens that document
    doc_column: str | None = None
    #: document views only: rows computed from the document's stored candidates (dicts with rank, prompt,
    #: candidate_id, ...) when the SQL gives none, e.g. a text analysed before the analyzer was installed
    from_candidates: Callable[[list[dict]], list[dict]] | None = None
    #: the analyzer that declared it (filled in by `analyzer_views`)
    analyzer: str = ""

    @property
    def parameter(self) -> str:
        return PARAMETER[self.scope]

    @property
    def shortcut_label(self) -> str:
        return self.label or self.title


@dataclass
class ViewData:
    """A view's rows for one document or run, with what to say about them."""

    view: View
    #: the columns shown, in order
    columns: list[str]
    rows: list[dict]
    #: `table` (the view's SQL), `candidates` (computed from the document's candidates) or `fallback` (the
    #: table's own columns: it is not the shape the view's SQL expects)
    source: str = "table"
    #: a table the view reads is not in the database (its analyzer has not run on it)
    missing: bool = False
    #: why the view's SQL could not be read, one line
    problem: str | None = None

    @property
    def headings(self) -> list[str]:
        return [self.view.columns.get(c, c) for c in self.columns]

    @property
    def has_rows(self) -> bool:
        if self.view.kind == "matrix" and self.columns:  # NULL labels only add columns
            return any(row.get(self.columns[0]) is not None for row in self.rows)
        return bool(self.rows)

    def message(self) -> str:
        """The line above the rows (or instead of them); empty when there is nothing to say."""
        view = self.view
        if self.problem:
            return self.problem
        if not self.has_rows:
            if self.missing and view.from_candidates is None:
                return f"no {view.title.lower()} yet (run analysis plugins)"
            return view.empty or f"no {view.title.lower()} for this {view.scope}"
        if not view.note:
            return ""
        if self.source == "candidates":
            source = "counted from the prompts"
        else:
            source = f"{view.tables[0]} table" if view.tables else "table"
        groups = len({row.get(self.columns[0]) for row in self.rows}) if self.columns else 0
        return view.note.format_map(_Fill(source=source, rows=len(self.rows), groups=groups))


class _Fill(dict):
    def __missing__(self, key):
        return "{" + key + "}"


def table_names(ddl: Iterable[str]) -> list[str]:
    """The names of the tables (or views) that `CREATE TABLE ...` statements make, in order."""
    return [m.group(1) for statement in ddl if (m := _TABLE_NAME.search(statement or ""))]


def as_view(spec, analyzer=None) -> View:
    """A `View` from a View or a dict of its fields, checked, with its analyzer's name and tables filled in."""
    if isinstance(spec, Mapping):
        known = {f.name for f in fields(View)}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise ValueError(f"unknown view field(s): {', '.join(unknown)}")
        spec = View(**spec)
    if not isinstance(spec, View):
        raise TypeError(f"a view is a revprompt View or a dict, not {type(spec).__name__}")
    if spec.scope not in SCOPES:
        raise ValueError(f"view {spec.title!r}: scope must be one of {', '.join(SCOPES)}, not {spec.scope!r}")
    if spec.kind not in KINDS:
        raise ValueError(f"view {spec.title!r}: kind must be one of {', '.join(KINDS)}, not {spec.kind!r}")
    if spec.key is not None and not (len(spec.key) == 1 and spec.key.isalnum()):
        raise ValueError(f"view {spec.title!r}: key must be one letter or digit, not {spec.key!r}")
    changes: dict = {"columns": dict(spec.columns), "tables": tuple(spec.tables)}
    if analyzer is not None:
        from .analyzers import analyzer_name

        changes["analyzer"] = spec.analyzer or analyzer_name(analyzer)
        if not spec.tables:
            changes["tables"] = tuple(table_names(getattr(analyzer, "tables", None) or []))
    return replace(spec, **changes)


def analyzer_views(analyzers: Sequence | None = None, scope: str | None = None) -> list[View]:
    """Every view the `analyzers` (default: all registered) declare, in the order of `analyzers`; `scope` keeps one
    scope. An analyzer whose `views()` raises or returns a malformed view is left out with a warning: a broken
    plugin costs its own tabs, never the screen."""
    from .analyzers import analyzer_name, registered_analyzers

    out: list[View] = []
    for analyzer in registered_analyzers() if analyzers is None else analyzers:
        method = getattr(analyzer, "views", None)
        if method is None:
            continue
        try:
            views = [as_view(spec, analyzer) for spec in (method() or [])]
        except Exception as exc:  # noqa: BLE001 - a plugin's bug must not take the TUI down
            log.warning("views of %s left out: %s: %s", analyzer_name(analyzer), type(exc).__name__, exc)
            continue
        out += [v for v in views if scope is None or v.scope == scope]
    return out


def read_view(store: Store, view: View, key, candidates: list[dict] | None = None) -> ViewData:
    """The rows of `view` for one document (`key` is its doc_id) or run (its run_id).

    - a table the view reads is missing: no rows (`missing`), unless `from_candidates` computes them;
    - the SQL fails (a table of another shape, left by an older plugin version): `problem` says why, and the rows
      are computed from the `candidates` where the view can, else the table's own rows for the document or run
      are shown with its own columns (`source == "fallback"`), else none;
    - the SQL gives no rows and the view can compute them from the document's `candidates`: those.
    """
    param = view.parameter
    params = {param: key} if f"${param}" in view.sql else {}
    missing = any(not store.has_table(t) for t in view.tables)
    columns: list[str] = []
    rows: list[dict] = []
    source, problem = "table", None
    if not missing:
        try:
            columns, raw = store.query(view.sql, params)
            rows = [dict(zip(columns, r)) for r in raw]
        except UserError as exc:
            table = view.tables[0] if view.tables else view.title
            problem = f"cannot read {table}: {exc}"
            if view.from_candidates is None or not candidates:
                columns, rows, source = _fallback(store, view, key)
    data = ViewData(view, _shown(view, columns, source), rows, source, missing, problem)
    if not data.has_rows and view.from_candidates is not None and candidates:
        rows = [dict(r) for r in view.from_candidates(candidates)]
        columns = list(dict.fromkeys(c for r in rows for c in r))
        data = ViewData(view, _shown(view, columns, "candidates"), rows, "candidates", missing, problem)
    return data


def _fallback(store: Store, view: View, key) -> tuple[list[str], list[dict], str]:
    for table in view.tables[:1]:
        if view.parameter not in store.table_columns(table):
            break
        try:
            cols, raw = store.query(
                f'SELECT * FROM "{table}" WHERE "{view.parameter}" = ? LIMIT {FALLBACK_LIMIT}', [key]
            )
        except UserError:
            break
        return cols, [dict(zip(cols, r)) for r in raw], "fallback"
    return [], [], "table"


def _shown(view: View, columns: list[str], source: str) -> list[str]:
    if view.columns and source != "fallback":
        return [c for c in view.columns if c in columns]
    ids = {"doc_id", "run_id", "candidate_id", view.doc_column}
    return [c for c in columns if c not in ids] or list(columns)
