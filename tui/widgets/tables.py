"""Row-cursor tables whose Enter binding shows in the footer under a screen-specific name."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import DataTable


class NavTable(DataTable):
    """A zebra-striped, row-cursor DataTable; Enter ("Open") posts RowSelected."""

    BINDINGS = [Binding("enter", "select_cursor", "Open")]

    def __init__(self, **kwargs):
        kwargs.setdefault("cursor_type", "row")
        kwargs.setdefault("zebra_stripes", True)
        super().__init__(**kwargs)

    def selected_key(self) -> str | None:
        """The key of the row under the cursor, or None for an empty table."""
        if not self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return row_key.value


class CandidateTable(NavTable):
    BINDINGS = [Binding("enter", "select_cursor", "Tokens")]
