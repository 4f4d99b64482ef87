"""A run's site intent map: its pages grouped by intent cluster, and pages that compete for the same intent."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Footer, Header, Static, Tree

from revprompt.core.errors import UserError

from ..data import NO_INTENT
from ..format import shorten
from .base import BackScreen


class IntentScreen(BackScreen):
    def __init__(self, run_id: str):
        super().__init__()
        self.run_id = run_id

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="intent-info", classes="info")
        tree: Tree[int | None] = Tree("Intent map", id="intent-tree")
        tree.show_root = False
        yield tree
        yield DataTable(id="pairs", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        db = self.app.db
        problems = []
        try:
            clusters = db.intent_clusters(self.run_id)
        except UserError as exc:  # an analysis table of another shape: say so instead of failing
            clusters, problems = [], [f"cannot read intent_clusters: {exc}"]
        try:
            pairs = db.cannibalisation(self.run_id)
        except UserError as exc:
            pairs = None
            problems.append(f"cannot read cannibalisation_pairs: {exc}")
        info = self.query_one("#intent-info", Static)
        tree = self.query_one("#intent-tree", Tree)
        table = self.query_one("#pairs", DataTable)
        if problems:
            info.update(f"Run {self.run_id} · " + "; ".join(problems))
            info.add_class("error")
            tree.display = False
        elif clusters is None or not clusters:
            info.update(f"Run {self.run_id} · " + (NO_INTENT if clusters is None else "no pages clustered in this run"))
            tree.display = False
        else:
            n_pages = sum(len(c.pages) for c in clusters)
            info.update(
                f"Run {self.run_id} · {len(clusters)} intent clusters over {n_pages} pages · Enter opens a page"
            )
            for cluster in clusters:
                size = len(cluster.pages)
                label = Text.assemble((shorten(cluster.label, 50), "bold"), f"  ({size} page{'s' if size != 1 else ''})")
                node = tree.root.add(label, data=None, expand=True)
                for page in cluster.pages:
                    name = page.get("title") or page.get("uri") or f"doc {page['doc_id']}"
                    leaf = Text(shorten(name, 40))
                    if page.get("best_prompt"):
                        leaf.append("  → " + shorten(page["best_prompt"], 60), "dim italic")
                    node.add_leaf(leaf, data=int(page["doc_id"]))
            tree.cursor_line = 0
            tree.focus()
        if not pairs:
            table.display = False
            return
        table.border_title = "Cannibalisation: pages competing for one intent"
        table.add_column("Sim.", key="similarity")
        table.add_column("Page A", key="a")
        table.add_column("Page B", key="b")
        for i, row in enumerate(pairs):
            sim = row.get("similarity")
            table.add_row(
                f"{sim:.2f}" if isinstance(sim, float) else str(sim), shorten(row.get("page_a"), 36),
                shorten(row.get("page_b"), 36), key=f"{i}:{row.get('doc_id_a')}",
            )
        if tree.display is False:
            table.focus()

    def on_tree_node_selected(self, event: Tree.NodeSelected) -> None:
        event.stop()
        if event.node.data is not None:
            self.app.open_document(event.node.data)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        doc_a = str(event.row_key.value).split(":")[1]
        if doc_a.isdigit():
            self.app.open_document(int(doc_a))
