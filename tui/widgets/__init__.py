"""Widgets of the revprompt TUI."""

from .heatmap import Heatmap
from .tables import CandidateTable, NavTable
from .token_view import TokenConfidence
from .view_pane import ViewPane

__all__ = ["CandidateTable", "Heatmap", "NavTable", "TokenConfidence", "ViewPane"]
