"""Read-only SQL over the results database, results in a table (sandboxed: core/sandbox.py via ResultsDB.query)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static, TextArea

from ...core.errors import UserError
from ..format import shorten
from .base import BackScreen

DEFAULT_QUERY = "SHOW TABLES"
MAX_ROWS = 1000
MAX_CELL = 120


def cell(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.6g}"
    return shorten(str(value), MAX_CELL)


class SQLScreen(BackScreen):
    BINDINGS = [
        Binding("ctrl+r", "run_query", "Run query", priority=True),
        Binding("ctrl+l", "focus_editor", "Edit", priority=True),
    ]

    def __init__(self, query: str = DEFAULT_QUERY):
        super().__init__()
        self.initial_query = query

    def compose(self) -> ComposeResult:
        yield Header()
        yield TextArea(self.initial_query, id="sql-editor", show_line_numbers=False, soft_wrap=True)
        yield Static(
            "ctrl+r runs one query; the database is read-only and no other file can be read.",
            id="sql-status",
            classes="info",
        )
        yield DataTable(id="sql-results", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#sql-editor", TextArea).border_title = "SQL (read-only)"
        self.action_run_query()
        self.query_one("#sql-editor", TextArea).focus()

    def action_focus_editor(self) -> None:
        self.query_one("#sql-editor", TextArea).focus()

    def action_run_query(self) -> None:
        sql = self.query_one("#sql-editor", TextArea).text
        status = self.query_one("#sql-status", Static)
        table = self.query_one("#sql-results", DataTable)
        try:
            columns, rows, total = self.app.db.query(sql, limit=MAX_ROWS)
        except UserError as exc:
            status.update(str(exc))
            status.add_class("error")
            return
        status.remove_class("error")
        table.clear(columns=True)
        for i, name in enumerate(columns):
            table.add_column(name, key=f"{i}")
        for row in rows:
            table.add_row(*(cell(v) for v in row))
        shown = f"{len(rows)} of {total} rows" if total > len(rows) else f"{total} row{'s' if total != 1 else ''}"
        status.update(f"{shown} · {len(columns)} column{'s' if len(columns) != 1 else ''}")
