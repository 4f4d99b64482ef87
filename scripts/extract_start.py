"""How often the extracted text of a real page starts at its main content (issue 13, page chrome).

For each page in ../shared/data/web/ (index.jsonl: file, title), `extract_page` runs on the HTML and the first
line of its text is compared with the page's title heading, the block right under that heading and the first
block of <main> (read from the HTML; fine print in <small> does not count). A first line that is none of these
(a "new edition" banner, a version line, navigation) is chrome the model would read as the topic. Prints the count and the pages that miss, with their first line.

    .venv/bin/python scripts/extract_start.py [--data DIR] [--quiet]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "web"


def norm(text: str) -> str:
    """Lower-case words only: markdown marks, punctuation and spacing differ between HTML and markdown."""
    return " ".join(re.findall(r"\w+", text.lower()))


def first_line(markdown: str) -> str:
    for line in markdown.splitlines():
        if norm(line):
            return line.strip()
    return ""


def main_starts(html: str, title: str) -> list[str]:
    """Texts the main content may start with: the block right under the heading whose text is the title, and
    the first block of the page's <main> element (where the index's title is a site name). Blocks that are
    only <small> print (HTML's "side comments": "There is a new edition of the book ...") are not content."""
    import lxml.html

    tree = lxml.html.fromstring(html)
    want = norm(title)
    starts = []
    for h in tree.xpath("//h1 | //h2 | //h3"):
        if norm(h.text_content()) == want:
            starts += [b for b in _blocks(h.itersiblings())][:1]
            break
    for main in tree.xpath("//main")[:1]:
        starts += [b for b in _blocks(main.iterdescendants()) if b][:1]
    return starts


def _blocks(elements):
    for el in elements:
        if not isinstance(el.tag, str) or el.tag not in ("p", "blockquote", "h1", "h2", "h3", "h4", "pre", "ul", "ol"):
            continue
        text = norm(el.text_content())
        if text and text != norm(" ".join(s.text_content() for s in el.xpath(".//small"))):
            yield el.text_content()


def starts_at_main(markdown: str, title: str, starts: list[str]) -> bool:
    line = norm(first_line(markdown))
    if not line:
        return False
    targets = [norm(title)] + [norm(s) for s in starts]
    # the line is the heading, or the start of the paragraph under it (its first 8 words suffice)
    return any(t and (line == t or line.startswith(t) or t.startswith(" ".join(line.split()[:8]))) for t in targets)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with index.jsonl and pages/")
    parser.add_argument("--quiet", action="store_true", help="only the count")
    args = parser.parse_args(argv)

    from revprompt.sources.extract import extract_page

    rows = [json.loads(line) for line in (args.data / "index.jsonl").read_text().splitlines() if line.strip()]
    good, misses = 0, []
    for row in rows:
        html = (args.data / row["file"]).read_text(encoding="utf-8", errors="replace")
        markdown = extract_page(html).markdown
        if starts_at_main(markdown, row["title"], main_starts(html, row["title"])):
            good += 1
        else:
            misses.append((row["file"], first_line(markdown)[:90]))
    if not args.quiet:
        for file, line in misses:
            print(f"  {file}: {line!r}")
    print(f"{good} of {len(rows)} pages start at the main content")
    return 0


if __name__ == "__main__":
    sys.exit(main())
