"""A heatmap of a `matrix` view (e.g. words × candidates): rows are labels, columns the matrix's columns (e.g.
candidate ranks), shade = count."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from ..data import Matrix

CELL = 4
MAX_LABEL = 16


class Heatmap(Widget):
    """Render a Matrix; counts shaded from the background to $accent (darker = rarer)."""

    DEFAULT_CSS = """
    Heatmap {
        height: auto;
        width: auto;
    }
    Heatmap > .heatmap--hot { color: $accent; }
    Heatmap > .heatmap--header { color: $text-muted; text-style: bold; }
    """
    COMPONENT_CLASSES = {"heatmap--hot", "heatmap--header"}

    def __init__(self, matrix: Matrix | None = None, empty: str = "nothing to count", **kwargs):
        super().__init__(**kwargs)
        self.matrix = matrix
        self.empty = empty

    def set_matrix(self, matrix: Matrix | None) -> None:
        self.matrix = matrix
        self.refresh(layout=True)

    def render(self) -> Text:
        text = Text(end="")
        matrix = self.matrix
        if matrix is None or not matrix.labels:
            text.append(self.empty, style="dim italic")
            return text
        _, _, background, color = self.colors
        hot = self.get_component_styles("heatmap--hot").color
        header_style = self.get_component_styles("heatmap--header").rich_style
        width = min(MAX_LABEL, max(len(w) for w in matrix.labels))
        text.append((matrix.label_heading or "").ljust(width) + " ", header_style)
        for column in matrix.columns:
            text.append(f"{matrix.column_prefix}{column}".rjust(CELL - 1) + " ", header_style)
        text.append("  total", header_style)
        top = matrix.max_count or 1
        for label, row in zip(matrix.labels, matrix.counts):
            text.append("\n")
            shown = label if len(label) <= width else label[: width - 1] + "…"
            text.append(shown.ljust(width) + " ")
            for count in row:
                if count:
                    cell = background.blend(hot, 0.25 + 0.75 * count / top)
                    text.append(
                        f"{count} ".rjust(CELL - 1),
                        Style(color=cell.get_contrast_text(1.0).rich_color, bgcolor=cell.rich_color),
                    )
                    text.append(" ")
                else:
                    text.append("· ".rjust(CELL - 1) + " ", Style(color=background.blend(color, 0.3).rich_color))
            text.append(f"{sum(row):>7}")
        return text
