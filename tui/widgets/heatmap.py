"""A words × candidates frequency heatmap: rows are words, columns candidate ranks, shade = count."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from ..data import WordMatrix

CELL = 4
MAX_WORD = 16


class WordHeatmap(Widget):
    """Render a WordMatrix; counts shaded from the background to $accent (darker = rarer)."""

    DEFAULT_CSS = """
    WordHeatmap {
        height: auto;
        width: auto;
    }
    WordHeatmap > .word-heatmap--hot { color: $accent; }
    WordHeatmap > .word-heatmap--header { color: $text-muted; text-style: bold; }
    """
    COMPONENT_CLASSES = {"word-heatmap--hot", "word-heatmap--header"}

    def __init__(self, matrix: WordMatrix | None = None, **kwargs):
        super().__init__(**kwargs)
        self.matrix = matrix

    def set_matrix(self, matrix: WordMatrix | None) -> None:
        self.matrix = matrix
        self.refresh(layout=True)

    def render(self) -> Text:
        text = Text(end="")
        matrix = self.matrix
        if matrix is None or not matrix.words:
            text.append("no words to count (no candidates)", style="dim italic")
            return text
        _, _, background, color = self.colors
        hot = self.get_component_styles("word-heatmap--hot").color
        header_style = self.get_component_styles("word-heatmap--header").rich_style
        width = min(MAX_WORD, max(len(w) for w in matrix.words))
        text.append("word".ljust(width) + " ", header_style)
        for rank in matrix.ranks:
            text.append(f"#{rank}".rjust(CELL - 1) + " ", header_style)
        text.append("  total", header_style)
        top = matrix.max_count or 1
        for word, row in zip(matrix.words, matrix.counts):
            text.append("\n")
            label = word if len(word) <= width else word[: width - 1] + "…"
            text.append(label.ljust(width) + " ")
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
