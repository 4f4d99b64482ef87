"""Page chrome (issue 13): a page's extracted text starts at its main content, not at a banner or a menu.

The pages are served by the loopback site and fetched as a crawl would: a Node.js API page (its header says
"Node.js v20.20.2 documentation" above the version picker and the table of contents) and a Rust book "old link"
page (fine print under the title: "There is a new edition of the book and this is an old link.").
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "site"))

from sitefixture import SiteServer  # noqa: E402

from revprompt.sources.chrome import strip_leading_chrome  # noqa: E402
from revprompt.sources.fetch import Fetcher, FetchSettings, fetch_page  # noqa: E402

PAGES = Path(__file__).resolve().parent / "fixtures" / "chrome"


@pytest.fixture(scope="module")
def site():
    with SiteServer() as server:
        for file in PAGES.glob("*.html"):
            server.extra_pages["/" + file.stem] = file.read_text(encoding="utf-8")
        yield server


def fetch(site, path: str):
    doc = fetch_page(site.url(path), Fetcher(FetchSettings(retries=0, total_timeout=5.0))).doc
    assert doc.status != "failed", doc.error
    return doc


def first_line(text: str) -> str:
    return next(line for line in text.splitlines() if line.strip())


def test_node_api_page_starts_at_its_module_not_the_version_banner(site):
    doc = fetch(site, "/node-api-path")
    assert doc.title == "Path | Node.js v20.20.2 Documentation"
    assert first_line(doc.text).startswith("## Path")
    assert "v20.20.2" not in doc.text.split("lib/path.js")[0]  # no banner, no version picker above the content
    for content in ("The `node:path` module provides utilities", "### Windows vs. POSIX", "path.basename()"):
        assert content in doc.text


def test_old_link_banner_is_dropped_and_the_rest_kept(site):
    doc = fetch(site, "/rust-book-old-link")
    assert first_line(doc.text).startswith("Trait objects combine the data")
    assert "There is a new edition" not in doc.text
    assert "In the second edition" in doc.text
    assert doc.text.rstrip().endswith("in the quote.")  # fine print further down is content: kept


def test_text_above_the_title_heading_stays_when_it_is_content():
    intro = (
        "Before we start: this chapter assumes you finished the previous one, installed the toolchain and "
        "created a project, because every example below builds on that project and its files."
    )
    markdown = f"{intro}\n\n## Paths\n\nA path names an item.\n"
    assert strip_leading_chrome(markdown, "Paths - The Book") == markdown.strip()
    menu = "# The Book\n\n- Home\n- Chapters\n\n## Paths\n\nA path names an item in a module tree, like a file path."
    assert strip_leading_chrome(menu, "Paths - The Book").startswith("## Paths")
    fenced = "- Home\n\n```sh\n# Paths\n```\n\nText.\n"  # a '#' line in code is no heading
    assert strip_leading_chrome(fenced, "Paths - The Book") == fenced.strip()
