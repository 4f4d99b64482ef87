"""Small formatting helpers shared by the screens."""

from __future__ import annotations

import math


def fmt_ppl(value) -> str:
    """Perplexity: two decimals while readable, scientific notation for the huge ones of untrained models."""
    if value is None:
        return "-"
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf"
    return f"{value:.2f}" if value < 10_000 else f"{value:.2e}"


def fmt_prob(value) -> str:
    return "-" if value is None else f"{float(value):.3f}"


def fmt_time(value) -> str:
    if value is None:
        return "-"
    try:
        return value.strftime("%Y-%m-%d %H:%M")
    except AttributeError:
        return str(value)[:16]


def shorten(text: str | None, width: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def bar(fraction: float, width: int = 10) -> str:
    """A horizontal bar of eighth blocks, `width` cells at fraction 1."""
    fraction = min(1.0, max(0.0, float(fraction)))
    eighths = round(fraction * width * 8)
    full, rest = divmod(eighths, 8)
    return ("█" * full + (" ▏▎▍▌▋▊▉"[rest] if rest else "")).ljust(width)
