"""The revprompt TUI: browse a results database (runs → documents → candidates → token confidence), paste a
text to sweep and store, and query the database with read-only SQL.

    revprompt tui [--db DB] [--model NAME]

Screens live in `revprompt.tui.screens`, widgets in `revprompt.tui.widgets`, styles in app.tcss. The database
connection and its modes are explained in `revprompt.tui.data`. The analysis tabs (of a document, of a run) are
the views the registered analyzers declare (core/views.py): the app names none of them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import Screen

from .data import ResultsDB

EngineFactory = Callable[[], object]


class DatabaseCommands(Provider):
    """Command palette: jump to any run or document by name."""

    async def search(self, query: str) -> Hits:
        app = self.app
        if not isinstance(app, RevpromptApp):
            return
        matcher = self.matcher(query)
        for run in app.db.runs():
            text = f"run {run['run_id']} {run['command'] or ''} {run['target_key'] or ''}".strip()
            score = matcher.match(text)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(text),
                    partial(app.open_run, run["run_id"]),
                    text=text,
                    help=f"{run['n_docs']} documents, {run['status']}",
                )
        _, rows = app.db.store.query(
            "SELECT doc_id, coalesce(title, uri) AS name, uri FROM documents ORDER BY doc_id LIMIT 5000"
        )
        for doc_id, name, uri in rows:
            text = f"doc {name}"
            score = matcher.match(f"{text} {uri}")
            if score > 0:
                yield Hit(score, matcher.highlight(text), partial(app.open_document, doc_id), text=text, help=uri)

    async def discover(self) -> Hits:
        app = self.app
        if not isinstance(app, RevpromptApp):
            return
        for run in app.db.runs()[:10]:
            text = f"run {run['run_id']} {run['command'] or ''}".strip()
            yield DiscoveryHit(
                text,
                partial(app.open_run, run["run_id"]),
                text=text,
                help=f"{run['n_docs']} documents, {run['status']}",
            )


class RevpromptApp(App):
    """Explore a revprompt results database."""

    TITLE = "revprompt"
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {DatabaseCommands}
    BINDINGS = [
        # Shown in the footer on the runs screen (see RunsScreen), working everywhere.
        Binding("p", "paste", "Paste", show=False),
        Binding("s", "sql", "SQL", show=False),
        Binding("q", "quit", "Quit", show=False),
    ]

    def __init__(
        self,
        db_path: str | Path,
        engine_factory: EngineFactory | None = None,
        analyzers: Sequence | None = None,
        model_label: str | None = None,
        preload: bool = False,
        engine_description: dict | None = None,
        views: Sequence | None = None,
    ):
        """`engine_factory` builds the engine for the paste screen, once, in a worker thread (tests inject a
        tiny one); every paste reuses it. With `preload` that load starts as the app opens, so the first paste
        doesn't wait for it. `analyzers` overrides the registered analysis plugins run on pasted text ([] for
        none). `engine_description` is what the factory's engine is keyed by (core/analyze_command.py
        `engine_description`): a paste is stored under the run key `revprompt analyze -` gives the same text.
        `views` overrides the analysis tabs (default: the views of the registered analyzers, core/views.py)."""
        super().__init__()
        self.db_path = str(db_path)
        self.db = ResultsDB(self.db_path, views=views)
        self.engine_factory = engine_factory
        self.analyzers = analyzers
        self.model_label = model_label
        self.engine_description = engine_description
        self._engine = None
        self._engine_lock = threading.Lock()
        self.preload = preload
        self.sub_title = Path(self.db_path).name

    # -- engine (paste screen) --------------------------------------------------------------------------
    @property
    def engine_loaded(self) -> bool:
        return self._engine is not None

    def get_engine(self):
        """The paste screen's engine, built on first use (call from a worker thread: loading takes a while)."""
        with self._engine_lock:
            if self._engine is None:
                if self.engine_factory is None:
                    from ..core.errors import UserError

                    raise UserError("no model configured for this session")
                self._engine = self.engine_factory()
            return self._engine

    def on_mount(self) -> None:
        if self.preload and self.engine_factory is not None:
            self._preload_engine()

    @work(thread=True, exit_on_error=False, group="engine-preload")
    def _preload_engine(self) -> None:
        """Load the engine while the user browses. A failure here is not shown: the paste that needs the
        engine tries again and reports it where the user is looking."""
        try:
            self.get_engine()
        except Exception:  # noqa: BLE001  (reported by the paste screen's own attempt)
            pass

    # -- screens ----------------------------------------------------------------------------------------
    def get_default_screen(self) -> Screen:
        from .screens.runs import RunsScreen

        return RunsScreen()

    def on_unmount(self) -> None:
        self.db.close()

    def open_run(self, run_id: str) -> None:
        from .screens.documents import DocumentsScreen

        self.push_screen(DocumentsScreen(run_id))

    def open_document(self, doc_id: int) -> None:
        from .screens.document import DocumentScreen

        self.push_screen(DocumentScreen(int(doc_id)))

    def open_candidate(self, candidate_id: int, siblings: Sequence[int] = ()) -> None:
        from .screens.tokens import TokensScreen

        self.push_screen(TokensScreen(int(candidate_id), list(siblings)))

    def open_run_views(self, run_id: str, index: int = 0) -> None:
        """The run's analysis screen, on the tab of its `index`-th run view."""
        from .screens.run_views import RunViewsScreen

        self.push_screen(RunViewsScreen(run_id, index))

    def action_paste(self) -> None:
        from .screens.paste import PasteScreen

        if not isinstance(self.screen, PasteScreen):
            self.push_screen(PasteScreen())

    def action_sql(self) -> None:
        from .screens.sql import SQLScreen

        if not isinstance(self.screen, SQLScreen):
            self.push_screen(SQLScreen())

    def action_home(self) -> None:
        while len(self.screen_stack) > 1:
            self.pop_screen()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield SystemCommand("Runs", "Back to the list of runs", self.action_home)
        yield SystemCommand("Paste text", "Paste a text, sweep it and store the result", self.action_paste)
        yield SystemCommand("SQL query", "Query the database (read-only)", self.action_sql)
        run_id = getattr(screen, "run_id", None)
        if run_id:
            for i, view in enumerate(self.db.views("run")):
                yield SystemCommand(
                    view.title, f"{view.title} of run {run_id}", partial(self.open_run_views, run_id, i)
                )
        yield from super().get_system_commands(screen)
