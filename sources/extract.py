"""HTML to markdown: trafilatura for the main content, markdownify when trafilatura finds nothing."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .chrome import strip_leading_chrome


@dataclass
class Page:
    markdown: str
    title: str | None
    description: str | None
    canonical: str | None = None  # <link rel="canonical">, absolute (against the page URL and <base href>)


def extract_page(html: str, url: str | None = None) -> Page:
    """The page's main content as markdown, with its <title>, meta description and canonical URL.

    The HTML is parsed once (lxml, linear time) and that tree serves the title, the description, trafilatura's
    metadata and its extraction. No regular expression runs over the whole page: a lazy `<title>(.*?)</title>`
    search is quadratic on a page of repeated unclosed tags (8 s for 140 KB, hours for 5 MB).
    """
    import trafilatura
    from trafilatura.utils import load_html

    try:
        tree = load_html(html)
    except Exception:  # hopeless markup: markdownify below still gets its text
        tree = None
    # The <title> element is what search engines show (and what SEO work means by "title"); trafilatura's
    # guess (often the first <h1>) stands in when a page has none.
    html_title = html_description = canonical = None
    if tree is not None:
        canonical = _canonical(tree, url)
        html_title = _clean(_first_text(tree, "//head/title | //title"))
        html_description = _clean(
            _first_text(tree, "//meta[translate(@name, 'DESCRIPTION', 'description')='description']/@content")
        )
    title = description = None
    try:
        meta = trafilatura.extract_metadata(tree if tree is not None else html, default_url=url)
        if meta is not None:
            title, description = meta.title, meta.description
    except Exception:  # metadata is a nicety; a malformed head must not lose the page
        pass
    markdown = None
    try:
        markdown = trafilatura.extract(
            tree if tree is not None else html,
            url=url,
            output_format="markdown",
            include_comments=False,
            include_tables=True,
            favor_recall=True,
        )
    except Exception:
        markdown = None
    if not markdown or not markdown.strip():
        markdown = _markdownify(html)
    # Navigation and banners above the title heading would be read as the page's topic (chrome.py).
    markdown = strip_leading_chrome(markdown, html_title or title, tree)
    return Page(
        markdown=markdown,
        title=html_title or _clean(title),
        description=_clean(description) or html_description,
        canonical=canonical,
    )


def _canonical(tree, url: str | None) -> str | None:
    """The first `<link rel="canonical" href>` of the page, made absolute; None when it is not an http(s) URL."""
    from urllib.parse import urljoin, urlsplit

    hrefs = tree.xpath(
        "//link[contains(concat(' ', normalize-space(translate(@rel, 'CANONICAL', 'canonical')), ' '),"
        " ' canonical ')]/@href"
    )
    if not hrefs or not hrefs[0].strip():
        return None
    base = url or ""
    for href in tree.xpath("//base/@href")[:1]:
        base = urljoin(base, href.strip())
    try:
        target = urljoin(base, hrefs[0].strip())
        parts = urlsplit(target)
    except ValueError:
        return None
    return target if parts.scheme in ("http", "https") and parts.hostname else None


def _first_text(tree, xpath: str) -> str | None:
    for hit in tree.xpath(xpath)[:1]:
        return hit if isinstance(hit, str) else hit.text_content()
    return None


def _markdownify(html: str) -> str:
    """Everything but scripts and styles as markdown: the fallback when trafilatura finds no main content.
    Scripts go through lxml (not a regex, which backtracks on unclosed tags); markup nested too deep for
    markdownify's recursion yields the plain text instead."""
    import lxml.html
    from markdownify import markdownify

    try:
        tree = lxml.html.fromstring(html)
        for el in tree.xpath("//script | //style | //noscript"):
            el.drop_tree()
        body = lxml.html.tostring(tree, encoding="unicode")
    except Exception:  # empty or hopeless markup
        return ""
    try:
        markdown = markdownify(body, heading_style="ATX")
    except RecursionError:
        markdown = tree.text_content()
    return re.sub(r"\n{3,}", "\n\n", markdown).strip()


def _clean(value: str | None) -> str | None:
    """Unescaped, whitespace-collapsed text, or None when nothing is left."""
    if not value:
        return None
    import html as html_lib

    value = re.sub(r"\s+", " ", html_lib.unescape(value)).strip()
    return value or None


# Links to these are assets, not pages: a crawl never queues them.
ASSET_EXTENSIONS = frozenset(
    """.jpg .jpeg .png .gif .webp .svg .ico .bmp .tif .tiff .avif .css .js .mjs .map .json .pdf .zip .gz .tgz
    .bz2 .xz .7z .rar .tar .exe .dmg .msi .apk .iso .bin .mp3 .mp4 .m4a .wav .ogg .webm .avi .mov .mkv .flv
    .woff .woff2 .ttf .otf .eot .doc .docx .xls .xlsx .ppt .pptx .odt .ods .csv .rss .atom""".split()
)


def extract_links(html: str, base_url: str) -> list[str]:
    """Absolute http(s) links of a page, in document order, without fragments or duplicates.

    `<base href>` is honoured; mailto:, javascript:, tel: and links to assets (images, scripts, PDFs, ...)
    are left out.
    """
    from urllib.parse import urljoin, urlsplit

    import lxml.html

    try:
        tree = lxml.html.fromstring(html)
    except Exception:  # empty or hopeless markup has no links to follow
        return []
    base = base_url
    for href in tree.xpath("//base/@href")[:1]:
        base = urljoin(base_url, href.strip())
    out: list[str] = []
    seen: set[str] = set()
    for href in tree.xpath("//a/@href | //area/@href"):
        href = href.strip()
        if not href or href.startswith("#"):
            continue
        try:
            url = urljoin(base, href).split("#", 1)[0]
            parts = urlsplit(url)
        except ValueError:
            continue
        if parts.scheme not in ("http", "https") or not parts.hostname:
            continue
        path = parts.path.lower()
        dot = path.rfind(".")
        if dot > path.rfind("/") and path[dot:] in ASSET_EXTENSIONS:
            continue
        if url not in seen:
            seen.add(url)
            out.append(url)
    return out
