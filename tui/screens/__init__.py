"""Screens of the revprompt TUI, one per module."""

from .base import BackScreen

__all__ = ["BackScreen"]
