"""Keys that decide when two prompts (or two pairs) are the same, for the UNIQUE columns of the tables."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_SPACES = re.compile(r"\s+")
# Quotes and end punctuation that Gemini adds or drops at random: "Best pizza?" and best pizza are one prompt.
_EDGE = "\"'`“”‘’.!?;:,"


def prompt_key(text: str) -> str:
    """Case-, width-, whitespace- and edge-punctuation-insensitive form of a prompt."""
    norm = unicodedata.normalize("NFKC", text).casefold()
    norm = _SPACES.sub(" ", norm).strip().strip(_EDGE).strip()
    return norm


def pair_key(prompt: str, response: str) -> str:
    """Exact identity of a pair (normalised prompt + exact response): re-importing a file adds nothing."""
    digest = hashlib.sha256()
    digest.update(prompt_key(prompt).encode("utf-8"))
    digest.update(b"\x00")
    digest.update(response.strip().encode("utf-8"))
    return digest.hexdigest()
