"""Sitemaps: a urlset, a sitemap index (followed recursively, bounded), gzip, plain-text sitemaps, and a
site root whose robots.txt `Sitemap:` lines (or /sitemap.xml) name them.

Discovery fetches only the sitemaps; pages are fetched one by one as the batch analyses them, so a resumed
run skips the pages already done without fetching them again. A sitemap that cannot be read becomes a failed
row under its own URL; the other sitemaps of an index carry on.
"""

from __future__ import annotations

import gzip
import io
import logging
from dataclasses import replace
from urllib.parse import urljoin, urlsplit

from ..core.errors import UserError
from ..core.types import Document
from .base import SourceContext
from .fetch import MB, Fetcher, FetchError, ParamRules, is_http_url, normalize_url, site_root, url_problem
from .robots import fetch_robots
from .web import PageLoader

log = logging.getLogger("revprompt.sources.sitemap")

MAX_SITEMAP_BYTES = 50 * MB  # the sitemaps.org limit, uncompressed
MAX_INDEX_DEPTH = 3  # index -> index -> index -> urlset
MAX_SITEMAPS = 1000


class SitemapError(Exception):
    pass


def _gunzip(body: bytes) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(body)) as f:
            data = f.read(MAX_SITEMAP_BYTES + 1)
    except (OSError, EOFError) as exc:
        raise SitemapError(f"broken gzip ({type(exc).__name__})") from None
    if len(data) > MAX_SITEMAP_BYTES:
        raise SitemapError(f"sitemap larger than {MAX_SITEMAP_BYTES // MB} MB uncompressed")
    return data


def parse_sitemap(body: bytes, base_url: str) -> tuple[str, list[str]]:
    """('urlset' | 'sitemapindex', URLs) of a sitemap document; SitemapError when it is none."""
    if body[:2] == b"\x1f\x8b":
        body = _gunzip(body)
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head:
        raise SitemapError("empty sitemap")
    if not head.startswith(b"<"):
        # A plain-text sitemap: one URL per line (sitemaps.org allows it).
        text = head.decode("utf-8", errors="replace")
        urls = [line.strip() for line in text.splitlines() if _is_url_entry(line.strip())]
        if not urls:
            raise SitemapError("not a sitemap (no XML, no URLs)")
        return "urlset", urls
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, recover=True, huge_tree=False)
    try:
        root = etree.fromstring(head, parser=parser)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise SitemapError(f"not valid XML ({str(exc).splitlines()[0][:80] if str(exc) else 'unreadable'})") from None
    if root is None:
        raise SitemapError("not valid XML")
    kind = etree.QName(root).localname.lower()
    if kind not in ("urlset", "sitemapindex"):
        raise SitemapError(f"not a sitemap (root element <{etree.QName(root).localname}>)")
    entry = "url" if kind == "urlset" else "sitemap"
    urls = []
    for el in root:
        if not isinstance(el.tag, str) or etree.QName(el).localname.lower() != entry:
            continue
        for child in el:
            if isinstance(child.tag, str) and etree.QName(child).localname.lower() == "loc" and child.text:
                loc = child.text.strip()
                try:
                    loc = urljoin(base_url, loc)
                except ValueError:
                    pass  # malformed: kept, so that it becomes a failed row with its reason
                if _is_url_entry(loc):
                    urls.append(loc)
                break
    return kind, urls


def _is_url_entry(loc: str) -> bool:
    """An http(s) URL, well-formed or not: a malformed one is listed (and fails as a row), anything else
    (a relative path that did not join, a mailto:) is not an entry."""
    return is_http_url(loc) or (url_problem(loc) or "").startswith("malformed")


class SitemapSource(PageLoader):
    name = "sitemap"
    description = "A sitemap or sitemap index (.xml, .xml.gz), or a site root whose robots.txt names its sitemaps"

    def claims(self, target: str, options: SourceContext) -> bool:
        if not is_http_url(target):
            return False
        path = urlsplit(target).path.lower()
        return path.endswith((".xml", ".xml.gz")) or "sitemap" in target.lower()

    def discover(self, target: str, options: SourceContext) -> list[str | Document]:
        if not is_http_url(target):
            raise UserError(f"a sitemap must be an http(s) URL, not {target!r}")
        fetcher = Fetcher(replace(self.fetcher(options).settings, max_bytes=MAX_SITEMAP_BYTES))
        start = normalize_url(target)
        rules = ParamRules.from_options(options)  # for the pages; a sitemap's own URL stays as given
        limit = options.get("max_pages")
        parts = urlsplit(start)
        if parts.path in ("", "/") and not parts.query:
            robots = fetch_robots(start, fetcher)
            queue = [(normalize_url(u), 0) for u in robots.sitemaps] or [(urljoin(site_root(start), "/sitemap.xml"), 0)]
            log.info("sitemaps of %s: %s", start, ", ".join(u for u, _ in queue))
        else:
            queue = [(start, 0)]
        items: list[str | Document] = []
        pages: set[str] = set()
        visited: set[str] = set()
        while queue:
            url, depth = queue.pop(0)
            if url in visited:
                continue
            visited.add(url)
            if len(visited) > MAX_SITEMAPS:
                log.warning("more than %d sitemaps under %s: the rest are ignored", MAX_SITEMAPS, start)
                break
            try:
                kind, urls = parse_sitemap(fetcher.get(url).body, url)
            except (FetchError, SitemapError) as exc:
                items.append(Document(uri=url, source=self.name).failed(f"sitemap: {exc}"))
                continue
            if kind == "sitemapindex":
                if depth >= MAX_INDEX_DEPTH:
                    items.append(
                        Document(uri=url, source=self.name).failed(
                            f"sitemap: index nested more than {MAX_INDEX_DEPTH} deep"
                        )
                    )
                    continue
                for u in urls:
                    if url_problem(u):
                        items.append(Document(uri=u[:2000], source=self.name).failed(f"sitemap: {url_problem(u)}"))
                    else:
                        queue.append((normalize_url(u), depth + 1))
                continue
            for u in urls:
                if problem := url_problem(u):
                    items.append(Document(uri=u[:2000], source=self.name).failed(problem))
                    continue
                u = normalize_url(u, rules)
                if u not in pages:
                    pages.add(u)
                    items.append(u)
                    if limit is not None and len(pages) >= int(limit):
                        return items
        if not items:
            items.append(Document(uri=start, source=self.name).failed("sitemap lists no URLs"))
        return items
