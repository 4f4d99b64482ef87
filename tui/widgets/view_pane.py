"""One analyzer's view (core/views.py) as the body of a tab: a table, a heatmap or a tree, with a note above.

The pane knows views only by their layout (`kind`), never by the analyzer that declared them, so a third-party
analyzer's tab is built exactly like a built-in one's.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import DataTable, Static, Tree

from ...core.views import View, ViewData
from ..data import Matrix, groups_of
from ..format import shorten
from .heatmap import Heatmap

CELL_WIDTH = 80


def cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return shorten(str(value), CELL_WIDTH)


class ViewPane(Vertical):
    """The rows of one view for one document or run; Enter on a row with a doc_id opens that document."""

    DEFAULT_CSS = """
    ViewPane { height: 1fr; }
    ViewPane > .view-scroll { height: 1fr; padding: 0 1; }
    ViewPane > Tree { height: 1fr; }
    """

    def __init__(self, view: View, **kwargs):
        super().__init__(**kwargs)
        self.view = view
        self.data: ViewData | None = None

    def compose(self) -> ComposeResult:
        kind = self.view.kind
        if kind == "matrix":
            with VerticalScroll(classes="view-scroll"):
                yield Static(classes="note view-note")
                yield Heatmap(empty=self.view.empty or "nothing to count", classes="view-body")
        elif kind == "groups":
            yield Static(classes="note view-note")
            tree: Tree[int | None] = Tree(self.view.title, classes="view-body")
            tree.show_root = False
            yield tree
        else:
            yield Static(classes="note view-note")
            yield DataTable(cursor_type="row", zebra_stripes=True, classes="view-body")

    @property
    def focus_target(self) -> Widget | None:
        """The widget a tab switch focuses: the scroll of a heatmap, else the table or tree when shown."""
        if self.view.kind == "matrix":
            return self.query_one(".view-scroll")
        body = self.query_one(".view-body")
        return body if body.display else None

    def show(self, data: ViewData) -> None:
        self.data = data
        note = self.query_one(".view-note", Static)
        message = data.message()
        note.update(message)
        if self.view.kind == "matrix":
            heatmap = self.query_one(Heatmap)
            if data.has_rows:
                heatmap.set_matrix(Matrix.from_view(data))
            else:  # the heatmap says it itself, where the counts would be
                note.display = False
                heatmap.empty = message or heatmap.empty
                heatmap.set_matrix(None)
            return
        note.display = bool(message)
        if not data.has_rows:
            self.query_one(".view-body").display = False
            if data.problem:
                note.add_class("error")
            return
        if self.view.kind == "groups":
            self._fill_tree(data)
        else:
            self._fill_table(data)

    def _fill_table(self, data: ViewData) -> None:
        table = self.query_one(DataTable)
        for column, heading in zip(data.columns, data.headings):
            table.add_column(heading, key=column)
        link = self.view.doc_column
        for i, row in enumerate(data.rows):
            doc_id = row.get(link) if link else None
            table.add_row(
                *(cell(row.get(c)) for c in data.columns), key=f"{i}:{doc_id}" if doc_id is not None else str(i)
            )

    def _fill_tree(self, data: ViewData) -> None:
        tree = self.query_one(Tree)
        member, detail = ([*data.columns[1:], None, None])[:2]
        link = self.view.doc_column
        for group in groups_of(data):
            size = len(group.rows)
            node = tree.root.add(
                Text.assemble((shorten(group.label, 50), "bold"), f"  ({size})"), data=None, expand=True
            )
            for row in group.rows:
                leaf = Text(shorten(cell(row.get(member)) if member else "", 40))
                if detail and row.get(detail) is not None:
                    leaf.append("  → " + shorten(cell(row.get(detail)), 60), "dim italic")
                doc_id = row.get(link) if link else None
                node.add_leaf(leaf, data=int(doc_id) if doc_id is not None else None)
        tree.cursor_line = 0

    # -- events -----------------------------------------------------------------------------------------
    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        _, _, doc_id = str(event.row_key.value).partition(":")
        if doc_id.isdigit():
            self.app.open_document(int(doc_id))

    def on_tree_node_selected(self, event: Tree.NodeSelected) -> None:
        event.stop()
        if event.node.data is not None:
            self.app.open_document(event.node.data)
