"""Paste a text, sweep it in a worker thread with progress, see the ranked candidates and store them as a run."""

from __future__ import annotations

import time
import warnings

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Footer, Header, Label, ProgressBar, Static, TextArea
from textual.worker import Worker, WorkerState

from ...core.errors import UserError
from ..format import fmt_ppl, fmt_prob, shorten
from ..widgets import NavTable
from .base import BackScreen

STAGES = 3  # model ready, sweep done, saved


class PasteScreen(BackScreen):
    BINDINGS = [Binding("ctrl+r", "sweep", "Sweep & save", priority=True)]

    def __init__(self):
        super().__init__()
        self.saved: tuple[str, int] | None = None
        self.running = False
        self._started = 0.0
        self._stage_text = ""
        self.notes: list[str] = []

    def compose(self) -> ComposeResult:
        yield Header()
        model = self.app.model_label or "the default model"
        yield Static(
            f"Paste or type a text, then ctrl+r: it is swept with {model} and stored as a new run.",
            id="paste-help",
            classes="info",
        )
        yield TextArea(id="paste-text", soft_wrap=True, show_line_numbers=False)
        with Horizontal(id="paste-progress"):
            yield ProgressBar(total=STAGES, show_eta=False, id="paste-bar")
            yield Label("idle", id="paste-status")
        yield NavTable(id="paste-results")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#paste-results", NavTable)
        table.add_column("#", key="rank")
        table.add_column("PPL", key="ppl")
        table.add_column("Conf", key="conf")
        table.add_column("Config", key="config")
        table.add_column("Prompt", key="prompt")
        table.display = False
        self.query_one("#paste-text", TextArea).focus()
        self._ticker = self.set_interval(0.5, self._tick, pause=True)

    # -- running ----------------------------------------------------------------------------------------
    def action_sweep(self) -> None:
        if self.running:
            self.notify("a sweep is already running", severity="warning")
            return
        text = self.query_one("#paste-text", TextArea).text
        if not text.strip():
            self.notify("paste a text first", severity="warning")
            return
        if "\x00" in text:
            self._set_status("the text looks binary (contains NUL characters)", error=True)
            return
        if self.app.engine_factory is None and not self.app.engine_loaded:
            self._set_status("no model configured: start the TUI with `revprompt tui --model ...`", error=True)
            return
        self.running = True
        self.saved = None
        self.notes = []
        self.query_one("#paste-bar", ProgressBar).update(progress=0)
        self._started = time.monotonic()
        self._ticker.resume()
        self.sweep_text(text)

    @work(thread=True, exclusive=True, exit_on_error=False, group="sweep")
    def sweep_text(self, text: str) -> tuple[str, int, list[dict]]:
        app = self.app
        app.call_from_thread(self._stage, 0, "sweeping…" if app.engine_loaded else "loading the model…")
        engine = app.get_engine()
        n_configs = len(getattr(engine, "configs", []) or [])
        app.call_from_thread(
            self._stage, 1, f"sweeping {n_configs} decoding configurations…" if n_configs else "sweeping…"
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # truncation is reported from the result instead
            result = engine.sweep(text)
        app.call_from_thread(self._stage, 2, "saving…")
        return app.call_from_thread(self._save, text, result, engine)

    def _save(self, text: str, result, engine) -> tuple[str, int, list[dict]]:
        run_id, doc_id = self.app.db.save_paste(
            text,
            result,
            description=self.app.engine_description,
            analyzers=self.app.analyzers,
            on_error=self.notes.append,
            engine=engine,
        )
        return run_id, doc_id, self.app.db.candidates(doc_id)

    def _stage(self, done: int, message: str) -> None:
        self.query_one("#paste-bar", ProgressBar).update(progress=done)
        self._stage_text = message
        self._tick()

    def _tick(self) -> None:
        if self.running:
            self._set_status(f"{self._stage_text} {time.monotonic() - self._started:.0f}s")

    def _set_status(self, message: str, error: bool = False) -> None:
        label = self.query_one("#paste-status", Label)
        label.update(message)
        label.set_class(error, "error")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "sweep" or event.state not in (WorkerState.SUCCESS, WorkerState.ERROR):
            return
        self.running = False
        self._ticker.pause()
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            message = str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"
            self._set_status(f"failed: {shorten(message, 200)}", error=True)
            return
        run_id, doc_id, candidates = event.worker.result
        self.saved = (run_id, doc_id)
        self.query_one("#paste-bar", ProgressBar).update(progress=STAGES)
        seconds = time.monotonic() - self._started
        note = f" ({len(self.notes)} analyzer error(s))" if self.notes else ""
        self._set_status(f"saved: run {run_id}, doc {doc_id}, {len(candidates)} candidates, {seconds:.1f}s{note}")
        for message in self.notes:
            self.notify(message, title="analyzer failed", severity="warning")
        table = self.query_one("#paste-results", NavTable)
        table.clear()
        for cand in candidates:
            table.add_row(
                str(cand["rank"]),
                fmt_ppl(cand["perplexity"]),
                fmt_prob(cand["confidence"]),
                cand["config"],
                shorten(cand["prompt"], 300),
                key=str(cand["candidate_id"]),
            )
        table.display = True
        table.focus()

    # -- navigation -------------------------------------------------------------------------------------
    def on_data_table_row_selected(self, event: NavTable.RowSelected) -> None:
        event.stop()
        if self.saved:
            self.app.open_document(self.saved[1])

    def action_back(self) -> None:
        if self.running:
            self.notify("the sweep is still running; wait for it to be saved", severity="warning")
            return
        super().action_back()
