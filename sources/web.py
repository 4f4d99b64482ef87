"""Web pages: one URL, or a file listing URLs. Fetching rules live in fetch.py, extraction in extract.py."""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..core.errors import UserError
from ..core.types import Document
from .base import Source, SourceContext
from .fetch import Fetcher, FetchSettings, ParamRules, fetch_page, is_http_url, normalize_url, url_problem


class PageLoader(Source):
    """Shared by every source whose URIs are web pages: `load(uri)` fetches and extracts one page."""

    name = "url"
    #: loads are thread-safe: the batch runs a few fetches ahead of the analysis
    concurrent_loads = True
    #: fetch settings (fetch.py `FetchSettings`; library callers set them, no flag does): how pages are fetched
    run_neutral_options = frozenset(
        {"user_agent", "connect_timeout", "read_timeout", "total_timeout", "retries", "retry_backoff"}
    )

    def __init__(self):
        self._fetcher: Fetcher | None = None
        self._lock = threading.Lock()

    def fetcher(self, options: SourceContext) -> Fetcher:
        with self._lock:  # loads run in worker threads; build the fetcher once
            if self._fetcher is None:
                self._fetcher = Fetcher(FetchSettings.from_options(options))
            return self._fetcher

    def load(self, uri: str, options: SourceContext) -> Document:
        return fetch_page(uri, self.fetcher(options), self.name).doc


class UrlSource(PageLoader):
    name = "url"
    description = "A web page (http/https URL): main content as markdown, title and meta description kept"

    def claims(self, target: str, options: SourceContext) -> bool:
        return is_http_url(target)

    def discover(self, target: str, options: SourceContext):
        problem = url_problem(target)
        if problem:
            raise UserError(f"{problem}: {target!r}")
        yield normalize_url(target, ParamRules.from_options(options))


def read_url_list(target: str, source: str, options: Mapping[str, Any] | None = None) -> list[str | Document]:
    """The URLs in a list file (or '-' for stdin): one per line, blank lines and '#' comments ignored.

    A line that is not an http(s) URL becomes a failed Document, so it shows up as a row, not a crash.
    URLs are normalised (urlnorm.py) with the `strip_params`/`keep_params` options. A Screaming Frog CSV or
    an advertools crawl file is read as such (crawl_exports.py).
    """
    from .crawl_exports import read_crawl_export

    exported = read_crawl_export(target, source, options)
    if exported is not None:
        return exported
    rules = ParamRules.from_options(options)
    try:
        if target == "-":
            raw = sys.stdin.read()
        else:
            raw = Path(target).expanduser().read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise UserError(f"cannot read URL list {target}: {exc.strerror or exc}") from None
    items: list[str | Document] = []
    for line in raw.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        problem = url_problem(line)
        if problem is None:
            items.append(normalize_url(line, rules))
        else:
            items.append(Document(uri=line[:2000], source=source).failed(problem))
    if not items:
        raise UserError(f"{target} lists no URLs (one http(s) URL per line; '#' starts a comment)")
    return items


class UrlListSource(PageLoader):
    name = "urls"
    description = "A file of URLs, one per line ('#' comments): `revprompt analyze --urls FILE`"

    def claims(self, target: str, options: SourceContext) -> bool:
        return False  # a .txt file is text to analyse unless --urls / --source urls says otherwise

    def discover(self, target: str, options: SourceContext):
        return read_url_list(target, self.name, options)
