"""What the pushed screens share: Escape goes back; tabs and shortcuts for the analyzers' views."""

from __future__ import annotations

from collections.abc import Sequence

from textual.binding import Binding
from textual.dom import DOMNode
from textual.screen import Screen

from ...core.views import View

# Keys the app and its screens use themselves: a view's shortcut never takes one of them.
RESERVED_KEYS = frozenset("bcmnopqrst") | {"escape", "enter", "slash", "tab"}


class BackScreen(Screen):
    BINDINGS = [Binding("escape", "back", "Back")]

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    @property
    def db(self):
        return self.app.db


def view_shortcuts(views: Sequence[View]) -> dict[str, int]:
    """{key: index of its view} for the views whose shortcut is free (first come, first served)."""
    keys: dict[str, int] = {}
    for i, view in enumerate(views):
        key = (view.key or "").lower()
        if key and key not in RESERVED_KEYS and key not in keys:
            keys[key] = i
    return keys


def add_bindings(node: DOMNode, bindings: Sequence[Binding], before: str | None = None) -> None:
    """Bind `bindings` on this one screen, shown in the footer before the binding of key `before` (Textual
    builds bindings from the class's BINDINGS; a view's shortcut is known only once the views are)."""
    current = node._bindings.key_to_bindings
    ordered: dict[str, list[Binding]] = {}
    for key, existing in current.items():
        if key == before:
            for binding in bindings:
                ordered.setdefault(binding.key, []).append(binding)
        ordered.setdefault(key, []).extend(existing)
    if before not in current:
        for binding in bindings:
            ordered.setdefault(binding.key, []).append(binding)
    node._bindings.key_to_bindings = ordered


def run_view_bindings(views: Sequence[View]) -> list[Binding]:
    """A binding per run view with a free shortcut: `run_view(index)` opens the run's analysis on that tab."""
    return [Binding(key, f"run_view({i})", views[i].shortcut_label) for key, i in view_shortcuts(views).items()]
