"""Page pairs from chat pairs: the requests for a piece of writing on a topic, read in page mode too.

Why: a web page written by an assistant was produced by a request such as "Write a blog post about saving
money on a vacation" or "Explain the differences between supervised and unsupervised learning". Chat sets hold
such pairs in their own words, far more varied than the doc-page templates (`doc_pages.py`), but the model reads
them after the chat separator, while it reads web pages after the page separator (core/prompt_format.py). This
module picks them out so they can be trained in page mode as well.

A pair qualifies when its prompt is one line of at most `MAX_WORDS` words that asks for writing on a topic
(write/create/compose ... an article, essay, blog post, guide ...; explain/describe/what is/how does ...) and
refers to nothing the page would not show: no "the following", "this text", "below", no first or second person,
which point at an input or at the conversation; and its response is long-form (at least `MIN_RESPONSE_CHARS`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from ..training.data import Pair

MAX_WORDS = 25
MIN_RESPONSE_CHARS = 600

_REQUEST = re.compile(
    r"^(please )?("
    r"(write|create|compose|draft|generate|produce)\b.{0,40}\b"
    r"(article|blog|essay|guide|tutorial|overview|explanation|description|post|content|copy|introduction)\b"
    r"|(explain|describe|what is|what are|how does|how do|how to|tell me about|give me an overview)\b)",
    re.I,
)
# Words that point at something outside the page: an input ("the following text") or the chat ("my", "you").
_REFERS_OUT = re.compile(
    r"\b(following|this|these|below|above|text|code|passage|paragraph|sentence|given|you|your|me|my|i)\b", re.I
)
_ADDRESSED = re.compile(r"^(please )?(tell me about|give me an overview)", re.I)


def is_page_request(prompt: str, response: str) -> bool:
    """Whether (prompt, response) reads as a page and the request that produced it."""
    p = prompt.strip()
    if "\n" in p or not p or len(p.split()) > MAX_WORDS or len(response) < MIN_RESPONSE_CHARS:
        return False
    return bool(_REQUEST.search(p)) and not _REFERS_OUT.search(_ADDRESSED.sub("", p))


def page_requests(pairs: Iterable[Pair]) -> Iterator[Pair]:
    """The qualifying pairs, as page pairs (same prompt and response, kind "page")."""
    for pair in pairs:
        if is_page_request(pair.prompt, pair.response):
            yield Pair(pair.prompt.strip(), pair.response, pair.source, kind="page")
