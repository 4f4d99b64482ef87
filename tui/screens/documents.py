"""A run's documents: filter by text, sort by status, perplexity or title."""

from __future__ import annotations

import math

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Input, Static

from ..format import fmt_ppl, shorten
from ..widgets import NavTable
from .base import BackScreen, add_bindings, run_view_bindings

SORT_KEYS = ("perplexity", "status", "title")
COLUMN_SORT = {"status": "status", "ppl": "perplexity", "title": "title"}


def doc_name(doc: dict) -> str:
    return doc.get("title") or doc.get("uri") or ""


def sort_value(doc: dict, key: str):
    if key == "perplexity":
        ppl = doc.get("best_perplexity")
        # Documents without candidates (failed, pending) sort after every scored one.
        return (ppl is None or math.isnan(ppl), ppl if ppl is not None else 0.0, doc["doc_id"])
    if key == "status":
        return (doc.get("status") or "", doc["doc_id"])
    return (doc_name(doc).casefold(), doc["doc_id"])


class DocumentsScreen(BackScreen):
    BINDINGS = [
        Binding("slash", "filter", "Filter"),
        Binding("o", "cycle_sort", "Sort"),
        Binding("r", "reverse", "Reverse"),
    ]

    def __init__(self, run_id: str):
        super().__init__()
        self.run_id = run_id
        add_bindings(self, run_view_bindings(self.app.db.views("run")))  # e.g. i: the run's intent map
        self.sort_key = "perplexity"
        self.reverse = False
        self.all_docs: list[dict] = []
        self.shown: list[dict] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="docs-info", classes="info")
        yield Input(placeholder="filter: title, URI, status or prompt  (/ to focus, Enter to list)", id="filter")
        yield NavTable(id="documents")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#documents", NavTable)
        table.add_column("Status", key="status")
        table.add_column("PPL", key="ppl")
        table.add_column("#", key="n")
        table.add_column("Title / URI", key="title")
        self.all_docs = self.app.db.documents(self.run_id)
        self.refresh_table()
        table.focus()

    def on_screen_resume(self) -> None:
        self.all_docs = self.app.db.documents(self.run_id)
        self.refresh_table()

    # -- filtering and sorting --------------------------------------------------------------------------
    @property
    def filter_text(self) -> str:
        return self.query_one("#filter", Input).value.strip().casefold()

    def refresh_table(self) -> None:
        table = self.query_one("#documents", NavTable)
        current = table.selected_key()
        needle = self.filter_text
        docs = [
            d
            for d in self.all_docs
            if not needle
            or needle in " ".join(str(d.get(k) or "") for k in ("title", "uri", "status", "best_prompt")).casefold()
        ]
        docs.sort(key=lambda d: sort_value(d, self.sort_key), reverse=self.reverse)
        if self.sort_key == "perplexity" and self.reverse:
            # Reversed, unscored documents still go last.
            docs.sort(key=lambda d: d.get("best_perplexity") is None)
        self.shown = docs
        table.clear()
        for doc in docs:
            status = doc["status"]
            table.add_row(
                "✓ done" if status == "done" else ("✗ failed" if status == "failed" else status),
                fmt_ppl(doc["best_perplexity"]),
                str(doc["n_candidates"]),
                shorten(doc_name(doc), 200),
                key=str(doc["doc_id"]),
            )
        if current is not None and current in {str(d["doc_id"]) for d in docs}:
            table.move_cursor(row=table.get_row_index(current))
        arrow = "↓" if self.reverse else "↑"
        run = self.app.db.run(self.run_id) or {}
        n_failed = sum(d["status"] == "failed" for d in self.all_docs)
        counts = f"{len(docs)}/{len(self.all_docs)} documents" + (f", {n_failed} failed" if n_failed else "")
        self.query_one("#docs-info", Static).update(
            f"Run {self.run_id} · {shorten(run.get('command'), 16)} · {counts} · sort: {self.sort_key} {arrow}"
        )

    def on_input_changed(self, event: Input.Changed) -> None:
        self.refresh_table()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one("#documents", NavTable).focus()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = COLUMN_SORT.get(event.column_key.value)
        if key:
            self.reverse = (not self.reverse) if key == self.sort_key else False
            self.sort_key = key
            self.refresh_table()

    def on_data_table_row_selected(self, event: NavTable.RowSelected) -> None:
        event.stop()
        self.app.open_document(int(event.row_key.value))

    # -- actions ----------------------------------------------------------------------------------------
    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_cycle_sort(self) -> None:
        self.sort_key = SORT_KEYS[(SORT_KEYS.index(self.sort_key) + 1) % len(SORT_KEYS)]
        self.reverse = False
        self.refresh_table()

    def action_reverse(self) -> None:
        self.reverse = not self.reverse
        self.refresh_table()

    def action_run_view(self, index: int) -> None:
        self.app.open_run_views(self.run_id, index)

    def action_back(self) -> None:
        # Escape in the filter box returns to the list; in the list, to the runs.
        if self.focused is self.query_one("#filter", Input):
            self.query_one("#documents", NavTable).focus()
        else:
            super().action_back()
