"""The home screen: every run in the database, newest first."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from ..format import fmt_time, shorten
from ..widgets import NavTable
from .base import add_bindings, run_view_bindings


class RunsScreen(Screen):
    BINDINGS = [
        Binding("p", "app.paste", "Paste"),
        Binding("s", "app.sql", "SQL"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self):
        super().__init__()
        # a run view's shortcut (e.g. i: the intent map) opens it for the run under the cursor
        add_bindings(self, run_view_bindings(self.app.db.views("run")), before="p")

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="runs-info", classes="info")
        yield NavTable(id="runs")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#runs", NavTable)
        table.add_column("Run", key="run")
        table.add_column("Created", key="created")
        table.add_column("Docs", key="docs")
        table.add_column("Status", key="status")
        table.add_column("Command", key="command")
        table.add_column("Target", key="target")
        self.reload()
        table.focus()

    def on_screen_resume(self) -> None:
        self.reload()

    def reload(self) -> None:
        table = self.query_one("#runs", NavTable)
        current = table.selected_key()
        table.clear()
        runs = self.app.db.runs()
        for run in runs:
            # done/all, then failures (✗) and duplicates: copies of another page, stored unanalysed
            marks = [f"{run['n_failed']}✗"] if run["n_failed"] else []
            if run.get("n_duplicates"):
                marks.append(f"{run['n_duplicates']} dup")
            docs = f"{run['n_done']}/{run['n_docs']}" + (f" ({' '.join(marks)})" if marks else "")
            table.add_row(
                run["run_id"],
                fmt_time(run["created_at"]),
                docs,
                run["status"],
                shorten(run["command"], 14),
                shorten(run["target_key"], 20),
                key=run["run_id"],
            )
        info = self.query_one("#runs-info", Static)
        if runs:
            info.update(f"{len(runs)} run{'s' if len(runs) != 1 else ''} · Enter opens a run's documents")
        else:
            info.update("No runs yet: press p to paste a text, or run `revprompt analyze`.")
        if current is not None and current in {r["run_id"] for r in runs}:
            table.move_cursor(row=table.get_row_index(current))

    def on_data_table_row_selected(self, event: NavTable.RowSelected) -> None:
        event.stop()
        self.app.open_run(event.row_key.value)

    def action_run_view(self, index: int) -> None:
        run_id = self.query_one("#runs", NavTable).selected_key()
        if run_id:
            self.app.open_run_views(run_id, index)
