"""Widgets of the revprompt TUI."""

from .heatmap import WordHeatmap
from .tables import CandidateTable, NavTable
from .token_view import TokenConfidence

__all__ = ["CandidateTable", "NavTable", "TokenConfidence", "WordHeatmap"]
