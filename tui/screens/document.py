"""One document: its ranked candidates (with a token-confidence preview), key phrases, a words × candidates
heatmap and its text."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane

from revprompt.core.errors import UserError

from ..data import NO_KEY_PHRASES
from ..format import fmt_ppl, fmt_prob, shorten
from ..widgets import CandidateTable, TokenConfidence, WordHeatmap
from .base import BackScreen

TABS = {"c": "tab-candidates", "k": "tab-phrases", "h": "tab-heatmap", "t": "tab-text"}


class DocumentScreen(BackScreen):
    BINDINGS = [
        Binding("c", "tab('c')", "Candidates"),
        Binding("k", "tab('k')", "Phrases"),
        Binding("h", "tab('h')", "Heatmap"),
        Binding("t", "tab('t')", "Text"),
    ]

    def __init__(self, doc_id: int):
        super().__init__()
        self.doc_id = doc_id
        self.doc: dict = {}
        self.candidates: list[dict] = []

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
            with TabPane("Key phrases", id="tab-phrases"):
                yield Static(id="phrases-note", classes="note")
                yield DataTable(id="phrases", cursor_type="row", zebra_stripes=True)
            with TabPane("Heatmap", id="tab-heatmap"):
                with VerticalScroll(id="heatmap-scroll"):
                    yield Static(id="heatmap-note", classes="note")
                    yield WordHeatmap(id="heatmap")
            with TabPane("Text", id="tab-text"):
                with VerticalScroll(id="text-scroll"):
                    yield Static(id="doc-text", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        db = self.app.db
        self.doc = db.document(self.doc_id) or {}
        self.candidates = db.candidates(self.doc_id)
        self._fill_info()
        self._fill_candidates()
        try:
            self._fill_phrases(db.key_phrases(self.doc_id))
        except UserError as exc:  # an analysis table of another shape: say so, keep the rest working
            self._fill_phrases([], note=f"cannot read key_phrases: {exc}")
        try:
            matrix = db.word_matrix(self.doc_id, self.candidates)
        except UserError:
            matrix = db.word_matrix(self.doc_id, self.candidates, use_table=False)
        self.query_one("#heatmap", WordHeatmap).set_matrix(matrix)
        source = "word_frequencies table" if matrix.source == "word_frequencies" else "counted from the prompts"
        self.query_one("#heatmap-note", Static).update(
            f"Words × candidates ({source}); columns are candidate ranks." if matrix.words else ""
        )
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
                str(cand["rank"]), fmt_ppl(cand["perplexity"]), fmt_prob(cand["confidence"]), cand["config"],
                shorten(cand["prompt"], 300), key=str(cand["candidate_id"]),
            )
        if not self.candidates:
            preview = self.query_one("#preview", TokenConfidence)
            preview.display = False

    def _fill_phrases(self, phrases: list[dict] | None, note: str | None = None) -> None:
        note_widget = self.query_one("#phrases-note", Static)
        table = self.query_one("#phrases", DataTable)
        if not phrases:
            note_widget.update(note or (NO_KEY_PHRASES if phrases is None else "no key phrases for this document"))
            table.display = False
            return
        note_widget.display = False
        labels = {"phrase": "Phrase", "weight": "Weight", "n": "n-gram", "n_candidates": "Candidates"}
        columns = [c for c in labels if c in phrases[0]]
        if "phrase" not in columns:  # a table of another shape: show what it has
            columns = [c for c in phrases[0] if c not in ("doc_id", "run_id")]
        for col in columns:
            table.add_column(labels.get(col, col), key=col)
        for row in phrases:
            table.add_row(*(f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in columns))

    # -- events -----------------------------------------------------------------------------------------
    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id != "candidates" or event.row_key is None:
            return
        tokens = self.app.db.tokens(int(event.row_key.value))
        self.query_one("#preview", TokenConfidence).set_tokens((t["token"], t["prob"]) for t in tokens)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.data_table.id == "candidates":
            siblings = [c["candidate_id"] for c in self.candidates]
            self.app.open_candidate(int(event.row_key.value), siblings)

    def action_tab(self, key: str) -> None:
        pane = TABS[key]
        self.query_one(TabbedContent).active = pane
        target = {"tab-candidates": "#candidates", "tab-phrases": "#phrases", "tab-heatmap": "#heatmap-scroll",
                  "tab-text": "#text-scroll"}[pane]
        widget = self.query_one(target)
        if widget.display and widget.focusable:
            widget.focus()

