"""Small text helpers shared by the analyzers: word tokens, stopwords, n-grams. No dependencies."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence

# Letters/digits, with inner apostrophes or hyphens kept ("don't", "e-commerce", "gpt-4").
_WORD = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*", re.UNICODE)

# A compact English stopword list (function words and prompt boilerplate that carries no topic).
STOPWORDS: frozenset[str] = frozenset(
    """
    a about above after again against all am an and any are aren't as at be because been before being below
    between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during each
    few for from further had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself
    him himself his how how's i i'd i'll i'm i've if in into is isn't it it's its itself let's me more most
    mustn't my myself no nor not of off on once only or other ought our ours ourselves out over own same shan't
    she she'd she'll she's should shouldn't so some such than that that's the their theirs them themselves then
    there there's these they they'd they'll they're they've this those through to too under until up very was
    wasn't we we'd we'll we're we've were weren't what what's when when's where where's which while who who's
    whom why why's will with won't would wouldn't you you'd you'll you're you've your yours yourself yourselves
    also just may might must shall us via vs etc eg ie
    """.split()
)


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text or "")
    return text.replace("’", "'").lower()


def words(text: str) -> list[str]:
    """Lower-cased word tokens in order."""
    return _WORD.findall(normalize(text))


def is_stopword(word: str) -> bool:
    return word in STOPWORDS or len(word) == 1 and not word.isdigit()


def ngrams(tokens: Sequence[str], max_n: int = 3, min_n: int = 1) -> Iterator[tuple[str, ...]]:
    """Content n-grams: no n-gram starts or ends with a stopword (inner ones are kept: "capital of france")."""
    for n in range(min_n, max_n + 1):
        for i in range(len(tokens) - n + 1):
            gram = tuple(tokens[i : i + n])
            if is_stopword(gram[0]) or is_stopword(gram[-1]):
                continue
            yield gram
