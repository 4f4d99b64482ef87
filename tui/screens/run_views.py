"""A run's analysis: a tab for every analyzer view of a run (the site intent map, cannibalisation pairs, a
third-party plugin's run table, ...); Enter on a page opens it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane

from ..widgets import ViewPane
from .base import BackScreen, add_bindings, view_shortcuts


class RunViewsScreen(BackScreen):
    def __init__(self, run_id: str, initial: int = 0):
        """`initial`: the index (among the run views) of the tab to open on."""
        super().__init__()
        self.run_id = run_id
        self.views = self.app.db.views("run")
        self.initial = initial if 0 <= initial < len(self.views) else 0
        shortcuts = view_shortcuts(self.views)
        self.tabs = {key: f"tab-view-{i}" for key, i in shortcuts.items()}
        add_bindings(
            self, [Binding(key, f"tab('{key}')", self.views[i].shortcut_label) for key, i in shortcuts.items()]
        )

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="run-views-info", classes="info")
        if self.views:
            with TabbedContent(initial=f"tab-view-{self.initial}"):
                for i, view in enumerate(self.views):
                    with TabPane(view.title, id=f"tab-view-{i}"):
                        yield ViewPane(view, id=f"view-{i}")
        yield Footer()

    def on_mount(self) -> None:
        db = self.app.db
        run = db.run(self.run_id) or {}
        info = f"Run {self.run_id}"
        if run.get("command"):
            info += f" · {run['command']}"
        if not self.views:
            info += " · no analyzer shows anything for a run (see `revprompt plugins`)"
        self.query_one("#run-views-info", Static).update(info)
        for i, view in enumerate(self.views):
            self.query_one(f"#view-{i}", ViewPane).show(db.view(view, self.run_id))
        if self.views:
            self._focus(f"tab-view-{self.initial}")

    def action_tab(self, key: str) -> None:
        pane = self.tabs.get(key)
        if pane is not None:
            self.query_one(TabbedContent).active = pane
            self._focus(pane)

    def _focus(self, pane: str) -> None:
        widget = self.query_one(f"#{pane} ViewPane", ViewPane).focus_target
        if widget is not None and widget.display and widget.focusable:
            widget.focus()
