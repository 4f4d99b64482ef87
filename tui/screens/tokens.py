"""One candidate's token-confidence view: the prompt with each token shaded by its probability, and the
per-token table."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from ..format import bar, fmt_ppl, fmt_prob, shorten
from ..widgets import TokenConfidence
from .base import BackScreen


class TokensScreen(BackScreen):
    BINDINGS = [
        Binding("m", "toggle_mode", "Opacity/heat"),
        Binding("n", "step(1)", "Next"),
        Binding("b", "step(-1)", "Prev"),
    ]

    def __init__(self, candidate_id: int, siblings: list[int] | None = None):
        super().__init__()
        self.candidate_id = candidate_id
        self.candidate_ids = list(siblings or [candidate_id])
        if candidate_id not in self.candidate_ids:
            self.candidate_ids = [candidate_id]
        self.candidate: dict = {}

    @property
    def run_id(self) -> str | None:
        return self.candidate.get("run_id")

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="cand-info", classes="info")
        with VerticalScroll(id="token-box"):
            yield TokenConfidence(id="tokens-view")
        yield DataTable(id="token-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#token-table", DataTable)
        table.add_column("#", key="pos")
        table.add_column("Token", key="token")
        table.add_column("Prob", key="prob")
        table.add_column("", key="bar")
        self.query_one("#token-box").border_title = "Token confidence"
        self.load(self.candidate_id)
        table.focus()

    def load(self, candidate_id: int) -> None:
        db = self.app.db
        self.candidate_id = candidate_id
        self.candidate = db.candidate(candidate_id) or {}
        tokens = db.tokens(candidate_id)
        cand = self.candidate
        info = Text(end="")
        if cand:
            info.append(f"#{cand['rank']}", "bold")
            info.append(
                f" of {len(self.candidate_ids)} · perplexity {fmt_ppl(cand['perplexity'])} · "
                f"confidence {fmt_prob(cand['confidence'])} · {cand['config']} · {len(tokens)} tokens\n"
            )
            info.append(shorten(cand["prompt"], 156), "italic")
        else:
            info.append(f"candidate {candidate_id} not found", "red")
        self.query_one("#cand-info", Static).update(info)
        self.query_one("#tokens-view", TokenConfidence).set_tokens((t["token"], t["prob"]) for t in tokens)
        table = self.query_one("#token-table", DataTable)
        table.clear()
        for t in tokens:
            table.add_row(
                str(t["position"]), repr(t["token"]), fmt_prob(t["prob"]), bar(t["prob"], 12), key=str(t["position"])
            )

    def action_toggle_mode(self) -> None:
        self.query_one("#tokens-view", TokenConfidence).toggle_mode()

    def action_step(self, delta: int) -> None:
        index = self.candidate_ids.index(self.candidate_id) if self.candidate_id in self.candidate_ids else 0
        new = index + delta
        if 0 <= new < len(self.candidate_ids):
            self.load(self.candidate_ids[new])
        else:
            self.app.bell()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()  # token rows open nothing
