"""The token-confidence view: a candidate prompt with every token shaded by the model's probability for it.

Two modes:
- "opacity" (the seed's view): each token's text is blended into the background with an opacity proportional
  to its probability, so sure tokens stand out and unsure ones fade. A floor of 12% keeps p≈0 tokens legible.
- "heat": each token gets a background colour on a red (p=0) → yellow → green (p=1) scale.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.style import Style
from rich.text import Text
from textual.color import Color
from textual.reactive import reactive
from textual.widget import Widget

MIN_OPACITY = 0.12
MODES = ("opacity", "heat")


def token_display(token: str) -> str:
    """How a token is drawn: newlines marked, special tokens kept visible."""
    if token == "":
        return "∅"
    return token.replace("\r", "").replace("\n", "↵\n").replace("\t", "→   ")


def opacity_of(prob: float) -> float:
    prob = min(1.0, max(0.0, float(prob)))
    return MIN_OPACITY + (1.0 - MIN_OPACITY) * prob


class TokenConfidence(Widget):
    """Tokens of one candidate, shaded by probability (see the module docstring)."""

    DEFAULT_CSS = """
    TokenConfidence {
        height: auto;
    }
    TokenConfidence > .token-confidence--low { color: $error; }
    TokenConfidence > .token-confidence--mid { color: $warning; }
    TokenConfidence > .token-confidence--high { color: $success; }
    """
    COMPONENT_CLASSES = {"token-confidence--low", "token-confidence--mid", "token-confidence--high"}

    mode: reactive[str] = reactive("opacity", layout=True)
    show_legend: reactive[bool] = reactive(True, layout=True)

    def __init__(
        self, tokens: Iterable[tuple[str, float]] = (), *, mode: str = "opacity", show_legend: bool = True, **kwargs
    ):
        super().__init__(**kwargs)
        self._tokens = list(tokens)
        self.set_reactive(TokenConfidence.mode, mode)
        self.set_reactive(TokenConfidence.show_legend, show_legend)

    @property
    def tokens(self) -> list[tuple[str, float]]:
        return list(self._tokens)

    def set_tokens(self, tokens: Iterable[tuple[str, float]]) -> None:
        self._tokens = list(tokens)
        self.refresh(layout=True)

    def toggle_mode(self) -> str:
        self.mode = MODES[(MODES.index(self.mode) + 1) % len(MODES)] if self.mode in MODES else MODES[0]
        return self.mode

    # -- colours ----------------------------------------------------------------------------------------
    def _heat(self, prob: float) -> Color:
        low = self.get_component_styles("token-confidence--low").color
        mid = self.get_component_styles("token-confidence--mid").color
        high = self.get_component_styles("token-confidence--high").color
        prob = min(1.0, max(0.0, float(prob)))
        return low.blend(mid, prob * 2) if prob < 0.5 else mid.blend(high, (prob - 0.5) * 2)

    def style_for(self, prob: float) -> Style:
        _, _, background, color = self.colors
        if self.mode == "heat":
            cell = background.blend(self._heat(prob), 0.85)
            return Style(color=cell.get_contrast_text(1.0).rich_color, bgcolor=cell.rich_color)
        return Style(color=background.blend(color, opacity_of(prob)).rich_color)

    def legend(self) -> Text:
        text = Text("low ", style="dim")
        for step in range(11):
            text.append("██" if self.mode == "opacity" else "  ", self.style_for(step / 10))
        text.append(" high", style="dim")
        text.append(f"   ({self.mode} = probability)", style="dim italic")
        return text

    def render(self) -> Text:
        text = Text(end="")
        if not self._tokens:
            text.append("no tokens stored for this candidate", style="dim italic")
            return text
        for token, prob in self._tokens:
            style = self.style_for(prob)
            if token.startswith("<") and token.endswith(">") and len(token) > 2:
                style += Style(italic=True)
            text.append(token_display(token), style)
        if self.show_legend:
            text.append("\n\n")
            text.append_text(self.legend())
        return text
