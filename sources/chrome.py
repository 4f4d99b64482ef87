"""Page chrome at the start of extracted text: a version banner, navigation, a "this is an old link" notice.

The model reads the first lines of a page as its topic, so chrome there is costly: a Node.js API page that
begins "Node.js v20.20.2 documentation / Table of contents / Index / Other versions" gets prompts about Node
versions, not about its module. trafilatura keeps such lines when they sit inside the same container as the
content. Two rules trim them, and only at the start of the text, so no content further down can be lost:

- The page's title heading: the first `<title>` segment ("Path" of "Path | Node.js v20.20.2 Documentation")
  that is also a heading of the extracted text marks where the content starts; the lines above it go when they
  are all short (menu entries, banners: no line of more than `MAX_CHROME_WORDS` words) and fewer than the
  words under it. A page whose text opens with a real paragraph before that heading keeps it.
- Fine print: a leading line that is, in the HTML, a block made only of `<small>` text (HTML's "side
  comments", like the Rust book's "There is a new edition of the book and this is an old link.") goes.
"""

from __future__ import annotations

import re

MAX_CHROME_WORDS = 20
_TITLE_SEPARATORS = re.compile(r"\s+(?:[|\-–—·»:]|::)\s+")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*)$")
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")


def norm(text: str) -> str:
    """Lower-case words only, so '## Path#' (an anchor mark) and '*Path*' compare equal to 'Path'."""
    return " ".join(re.findall(r"\w+", text.lower()))


def title_segments(title: str | None) -> list[str]:
    """'Path | Node.js v20.20.2 Documentation' -> ['path', 'node js v20 20 2 documentation', and the whole].
    The page's own part usually comes first; the site's name after it."""
    if not title:
        return []
    parts = [norm(p) for p in _TITLE_SEPARATORS.split(title)] + [norm(title)]
    return [p for i, p in enumerate(parts) if p and p not in parts[:i]]


def fine_print(tree) -> set[str]:
    """Normalised texts of the blocks whose whole text is <small> print."""
    out: set[str] = set()
    if tree is None:
        return out
    for block in tree.xpath("//body//*[self::p or self::div or self::center][.//small]"):
        text = norm(block.text_content())
        if text and text == norm(" ".join(s.text_content() for s in block.xpath(".//small"))):
            out.add(text)
    return out


def strip_leading_chrome(markdown: str, title: str | None, tree=None) -> str:
    """`markdown` without the chrome above its title heading and without leading fine print (see the module)."""
    lines = markdown.splitlines()
    start = _title_heading(lines, title_segments(title))
    if start and _chrome_like(lines[:start], lines[start:]):
        lines = lines[start:]
    small = fine_print(tree)
    if small:
        # the first content line, or the first one under a title heading kept at the top
        i = _next_text(lines, 0)
        if i is not None and _HEADING.match(lines[i]):
            i = _next_text(lines, i + 1)
        while i is not None and norm(lines[i]) in small:
            del lines[i]
            i = _next_text(lines, i)
    return "\n".join(lines).strip()


def _chrome_like(above: list[str], below: list[str]) -> bool:
    """Short lines only, and fewer words than the content under the title heading."""
    words = [len(line.split()) for line in above]
    return max(words, default=0) <= MAX_CHROME_WORDS and sum(words) < sum(len(line.split()) for line in below)


def _title_heading(lines: list[str], segments: list[str]) -> int | None:
    """Index of the heading line that is the page's title, trying the <title>'s segments in order."""
    headings: list[tuple[int, str]] = []
    fenced = False
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else _HEADING.match(line)
        if m:
            headings.append((i, norm(m.group(1))))
    for segment in segments:
        for i, text in headings:
            if text == segment:
                return i
    return None


def _next_text(lines: list[str], i: int) -> int | None:
    while i < len(lines):
        if norm(lines[i]):
            return i
        i += 1
    return None
