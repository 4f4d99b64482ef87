"""One document: its ranked candidates (with a token-confidence preview), a tab for every analyzer view of a
document (key phrases, the words × candidates heatmap, a third-party plugin's table, ...) and its text."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane

from ..format import fmt_ppl, fmt_prob, shorten
from ..widgets import CandidateTable, TokenConfidence, ViewPane
from .base import BackScreen, add_bindings, view_shortcuts


class DocumentScreen(BackScreen):
    BINDINGS = [
        Binding("c", "tab('c')", "Candidates"),
        Binding("t", "tab('t')", "Text"),
    ]

    def __init__(self, doc_id: int):
        super().__init__()
        self.doc_id = doc_id
        self.doc: dict = {}
        self.candidates: list[dict] = []
        self.views = self.app.db.views("document")
        # key -> tab: the candidates and the text, and each view whose shortcut is free
        self.tabs = {"c": "tab-candidates", "t": "tab-text"}
        shortcuts = view_shortcuts(self.views)
        self.tabs.update({key: f"tab-view-{i}" for key, i in shortcuts.items()})
        add_bindings(
            self,
            [Binding(key, f"tab('{key}')", self.views[i].shortcut_label) for key, i in shortcuts.items()],
            before="t",
        )

    @property
    def run_id(self) -> str | None:
        return self.doc.get("run_id")

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="doc-info", classes="info")
        with TabbedContent(initial="tab-candidates"):
            with TabPane("Candidates", id="tab-candidates"):
                yield CandidateTable(id="candidates")
                yield TokenConfidence(id="preview", show_legend=False)
            for i, view in enumerate(self.views):
                with TabPane(view.title, id=f"tab-view-{i}"):
                    yield ViewPane(view, id=f"view-{i}")
            with TabPane("Text", id="tab-text"), VerticalScroll(id="text-scroll"):
                yield Static(id="doc-text", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        db = self.app.db
        self.doc = db.document(self.doc_id) or {}
        self.candidates = db.candidates(self.doc_id)
        self._fill_info()
        self._fill_candidates()
        for i, view in enumerate(self.views):
            self.query_one(f"#view-{i}", ViewPane).show(db.view(view, self.doc_id, self.candidates))
        self.query_one("#doc-text", Static).update(self.doc.get("text") or "(no text stored)")
        self.query_one("#candidates", CandidateTable).focus()

    def _fill_info(self) -> None:
        doc = self.doc
        if not doc:
            self.query_one("#doc-info", Static).update(f"document {self.doc_id} not found")
            return
        name = doc.get("title") or doc.get("uri")
        facts = [doc.get("status") or "?"]
        if doc.get("n_input_tokens") is not None:
            facts.append(f"{doc['n_input_tokens']} tokens" + (" (truncated)" if doc.get("truncated") else ""))
        facts.append(f"{len(self.candidates)} candidates")
        info = Text(end="")
        info.append(shorten(name, 76), "bold")
        info.append("\n" + shorten(doc.get("uri"), 44) + " · " + " · ".join(facts))
        if doc.get("error"):
            info.append("\nerror: " + shorten(doc["error"], 150), "red")
        self.query_one("#doc-info", Static).update(info)

    def _fill_candidates(self) -> None:
        table = self.query_one("#candidates", CandidateTable)
        table.add_column("#", key="rank")
        table.add_column("PPL", key="ppl")
        table.add_column("Conf", key="conf")
        table.add_column("Config", key="config")
        table.add_column("Prompt", key="prompt")
        for cand in self.candidates:
            table.add_row(
                str(cand["rank"]),
                fmt_ppl(cand["perplexity"]),
                fmt_prob(cand["confidence"]),
                cand["config"],
                shorten(cand["prompt"], 300),
                key=str(cand["candidate_id"]),
            )
        if not self.candidates:
            preview = self.query_one("#preview", TokenConfidence)
            preview.display = False

    # -- events -----------------------------------------------------------------------------------------
    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id != "candidates" or event.row_key is None:
            return
        tokens = self.app.db.tokens(int(event.row_key.value))
        self.query_one("#preview", TokenConfidence).set_tokens((t["token"], t["prob"]) for t in tokens)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "candidates":
            event.stop()
            siblings = [c["candidate_id"] for c in self.candidates]
            self.app.open_candidate(int(event.row_key.value), siblings)

    def action_tab(self, key: str) -> None:
        pane = self.tabs.get(key)
        if pane is None:
            return
        self.query_one(TabbedContent).active = pane
        if pane == "tab-candidates":
            widget = self.query_one("#candidates")
        elif pane == "tab-text":
            widget = self.query_one("#text-scroll")
        else:
            widget = self.query_one(f"#{pane} ViewPane", ViewPane).focus_target
        if widget is not None and widget.display and widget.focusable:
            widget.focus()
