"""What a source plugin is: it turns a target the user typed into Documents. Sources never touch the model."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from ..core.types import Document


@runtime_checkable
class Source(Protocol):
    #: short name used by `--source NAME`
    name: str
    #: one line for `revprompt plugins`
    description: str

    def claims(self, target: str, options: dict) -> bool:
        """True when this source knows how to read `target` (first claiming source wins, unless --source)."""

    def discover(self, target: str, options: dict) -> Iterable[str | Document]:
        """Expand a target into URIs to load (a sitemap into its URLs, a folder into files), or yield ready
        Documents (pasted text). URIs are yielded before any page is fetched so a resumed run can skip
        the ones already done without fetching them again."""

    def load(self, uri: str, options: dict) -> Document:
        """Fetch one URI into a Document. Failures come back as a Document with status 'failed' and an
        error message, never as an exception."""
