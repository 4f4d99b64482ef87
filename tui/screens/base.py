"""What the pushed screens share: Escape goes back."""

from __future__ import annotations

from textual.binding import Binding
from textual.screen import Screen


class BackScreen(Screen):
    BINDINGS = [Binding("escape", "back", "Back")]

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    @property
    def db(self):
        return self.app.db
