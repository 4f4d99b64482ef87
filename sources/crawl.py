"""Site crawl: breadth-first from a start URL, same host only, depth and page limits, robots.txt obeyed,
crawl delay, a small pool of fetch workers.

Pages are found while pages are fetched, so `discover()` streams: it yields each page as a ready Document the
moment it is fetched (the batch analyses it without fetching it again), and yields the bare URI of a page an
earlier, interrupted run already stored. For those the crawl reads the links it stored in the page's
`meta.links` (the run's `SourceContext.stored_meta`, uri -> meta) instead of fetching the page again, so
a resumed crawl walks the same site without re-fetching or re-analysing what is done.

Every URL the crawl decides to visit ends as one row: a page, a failure ("HTTP 404", "too many redirects",
...) or a URL robots.txt disallows, stored with status 'failed' and error "disallowed by robots.txt" (so
`--retry-failed` checks robots.txt again). All of them count towards --max-pages.

One page, one analysis: URLs are normalised (urlnorm.py: no fragment, sorted query, no tracking or session
parameters), and a page whose `<link rel="canonical">` names another page of the crawled site is yielded with
status 'duplicate' and `duplicate_of` = that canonical URL, which is queued (at the same depth, so a depth limit
cannot leave it out) and analysed once. A canonical that leads back to a page already set aside that way is
ignored (two pages naming each other would otherwise both go unanalysed). Identical texts under different
URLs are the batch's business (core/batch.py).

Redirects keep to the crawl's scope: the start URL may land on another host (`example.com` -> `www.`), which
then joins the crawl; any other page that redirects off those hosts becomes a failed row ("redirect leaves the
crawled site ..."), and a redirect target is checked against its own host's robots.txt before it is fetched.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, wait
from urllib.parse import urlsplit

import click

from ..core.errors import UserError
from ..core.storable import redact_text, stored_uri, strip_userinfo
from ..core.threads import DaemonPool
from ..core.types import Document
from .base import SourceContext
from .extract import extract_links
from .fetch import Fetcher, FetchSettings, ParamRules, fetch_page, is_http_url, normalize_url, split_credentials
from .robots import RobotsCache
from .web import PageLoader

log = logging.getLogger("revprompt.sources.crawl")

DEFAULT_MAX_PAGES = 100
DEFAULT_MAX_DEPTH = 3
DEFAULT_CONCURRENCY = 4
DEFAULT_CRAWL_DELAY = 0.5  # seconds between requests when robots.txt sets no Crawl-delay
MAX_CRAWL_DELAY = 60.0
MAX_STORED_LINKS = 1000
MAX_FRONTIER = 100_000


class _Pacer:
    """At most one request start per `delay` seconds, whatever the number of workers."""

    def __init__(self, delay: float):
        self.delay = delay
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if self.delay <= 0:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.delay
        if start > now:
            time.sleep(start - now)


def _host(url: str) -> str:
    return urlsplit(url).netloc.lower().rpartition("@")[2]  # user info is no part of a site


class CrawlSource(PageLoader):
    name = "crawl"
    description = "Crawl a site from a start URL: same host, --max-pages/--max-depth, robots.txt obeyed"
    #: discover() fetches as it goes and yields ready Documents; the batch consumes it lazily
    streaming = True
    cli_options = (
        click.Option(
            ["--max-depth"],
            default=DEFAULT_MAX_DEPTH,
            show_default=True,
            help="With --crawl: how many links deep to follow.",
        ),
        click.Option(
            ["--crawl-delay"],
            type=click.FloatRange(min=0),
            default=None,
            help="With --crawl: seconds between requests (default: robots.txt Crawl-delay, else 0.5).",
        ),
    )
    run_neutral_options = PageLoader.run_neutral_options | {"crawl_delay"}

    def claims(self, target: str, options: SourceContext) -> bool:
        return False  # a URL is one page unless --crawl / --source crawl says otherwise

    def estimate(self, target: str, options: SourceContext) -> int:
        """Upper bound on the rows this crawl makes (for the progress bar)."""
        return int(options.get("max_pages") or DEFAULT_MAX_PAGES)

    def discover(self, target: str, options: SourceContext):
        """Check the target now (a bad one is a usage error before anything runs); crawl lazily."""
        target = target.strip()
        if "://" not in target and "." in target and " " not in target:
            target = "https://" + target  # `--crawl example.com`
        if not is_http_url(target):
            raise UserError(f"--crawl needs an http(s) URL, not {redact_text(target)!r}")
        return self._crawl(target, options)

    def _crawl(self, target: str, options: SourceContext):
        max_pages = int(options.get("max_pages") or DEFAULT_MAX_PAGES)
        max_depth = int(options["max_depth"]) if options.get("max_depth") is not None else DEFAULT_MAX_DEPTH
        workers = max(1, int(options.get("concurrency") or DEFAULT_CONCURRENCY))
        ctx = SourceContext.of(options)
        done, stored_meta = ctx.done, ctx.stored_meta
        rules = ParamRules.from_options(options)

        def normalize(url: str) -> str:
            return strip_userinfo(normalize_url(url, rules))  # a link's user info is never queued, stored, shown

        # `https://user:pw@site/`: the credentials go to the fetcher as a header for that host, and no URL of
        # the crawl (queued, stored in documents or meta.links, logged, in an error) ever holds them.
        target, auth = split_credentials(target)
        fetcher = Fetcher(FetchSettings.from_options(options), auth=auth) if auth else self.fetcher(options)
        start = normalize(target)
        robots_cache = RobotsCache(fetcher)
        robots = robots_cache.for_url(start)
        delay = options.get("crawl_delay")
        if delay is None:
            delay = robots.crawl_delay()
            delay = DEFAULT_CRAWL_DELAY if delay is None else min(float(delay), MAX_CRAWL_DELAY)
        pacer = _Pacer(float(delay))
        hosts = {_host(start)}
        log.info(
            "crawling %s: max %d pages, depth %d, %d workers, %.2fs between requests",
            start,
            max_pages,
            max_depth,
            workers,
            float(delay),
        )

        frontier: deque[tuple[str, int]] = deque([(start, 0)])
        seen = {start}
        canonicalised: set[str] = set()  # pages set aside for their canonical
        # Pages stored by an earlier run of this crawl already count towards the limit.
        rows = len(done)

        def enqueue(links, depth: int) -> None:
            if depth > max_depth:
                return
            for link in links:
                url = normalize(link)
                if url not in seen and _host(url) in hosts and len(frontier) < MAX_FRONTIER:
                    seen.add(url)
                    frontier.append((url, depth))

        def redirect_guard(from_start: bool):
            """Vets each redirect of one page before it is followed: in scope, and allowed by its host's robots."""

            def guard(target: str) -> str | None:
                try:
                    target = normalize(target)
                except ValueError:
                    return None  # requests refuses it itself: "invalid URL"
                if not from_start and _host(target) not in hosts:
                    return f"redirect leaves the crawled site, not followed ({target})"
                refusal = robots_cache.refusal(target)
                return f"{refusal} (redirected to {target})" if refusal else None

            return guard

        def fetch(url: str, depth: int) -> tuple[Document, list[str]]:
            pacer.wait()
            page = fetch_page(url, fetcher, self.name, guard=redirect_guard(url == start))
            links: list[str] = []
            if page.html is not None:
                try:
                    links = extract_links(page.html, page.final_url or url)
                except Exception:  # a page whose links cannot be read is still a page
                    log.debug("no links read from %s", url, exc_info=True)
            if url == start and page.final_url and _host(page.final_url) not in hosts:
                hosts.add(_host(page.final_url))  # example.com -> www.example.com: crawl where it lands
            internal = [u for u in (normalize(x) for x in links) if _host(u) in hosts]
            page.doc.meta["depth"] = depth
            if page.doc.status != "failed":
                stored = [redact_text(u) for u in internal[:MAX_STORED_LINKS]]
                page.doc.meta["links"] = stored
                if stored != internal[:MAX_STORED_LINKS]:
                    # A link carried a credential (`?token=...`), stored as ***: a resumed crawl reads this page
                    # again for its links rather than follow a link it cannot rebuild.
                    page.doc.meta["links_redacted"] = True
            return page.doc, internal

        pool = DaemonPool(workers, thread_name_prefix="revprompt-crawl")  # never holds Ctrl-C (core/threads.py)
        in_flight: dict[Future, tuple[str, int, bool]] = {}  # (url, depth, stored already: fetched for its links)
        try:
            while frontier or in_flight:
                while frontier and len(in_flight) < workers:
                    url, depth = frontier.popleft()
                    if stored_uri(url) in done:  # `done` holds URIs as stored: credentials redacted
                        meta = stored_meta(url) or {}
                        if meta.get("links_redacted"):
                            in_flight[pool.submit(fetch, url, depth)] = (url, depth, True)
                            continue
                        links = [u for u in meta.get("links") or [] if isinstance(u, str)]
                        landed = meta.get("final_url")
                        if isinstance(landed, str):
                            seen.add(normalize(landed))
                            if url == start:  # where the site landed (www. and the like) is crawled too
                                hosts.add(_host(landed))
                        canonical = meta.get("duplicate_of")
                        if isinstance(canonical, str) and canonical == meta.get("canonical"):
                            canonicalised.add(url)
                            enqueue([canonical], depth)
                        enqueue(links, depth + 1)
                        yield url  # stored by an earlier run: the batch counts it as skipped
                        continue
                    if rows + sum(not again for _, _, again in in_flight.values()) >= max_pages:
                        frontier.clear()
                        break
                    reason = robots_cache.refusal(url)  # the rules of the URL's own host
                    if reason:
                        rows += 1
                        yield Document(uri=url, source=self.name, meta={"depth": depth}).failed(reason)
                        continue
                    in_flight[pool.submit(fetch, url, depth)] = (url, depth, False)
                if not in_flight:
                    continue
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    url, depth, again = in_flight.pop(future)
                    rows += 0 if again else 1  # a stored page counts from the start (`rows = len(done)`)
                    try:
                        doc, links = future.result()
                    except Exception as exc:  # a bug in one fetch costs its row, not the crawl
                        log.debug("crawl fetch of %s failed", url, exc_info=True)
                        doc, links = Document(uri=url, source=self.name).failed(f"{type(exc).__name__}: {exc}"), []
                    landed = doc.meta.get("final_url")
                    if landed:
                        seen.add(normalize(landed))  # a redirect target is not fetched a second time
                    canonical = self._canonical_elsewhere(doc, url, normalize, hosts, canonicalised)
                    if canonical:
                        canonicalised.add(url)
                        doc.status, doc.meta["duplicate_of"] = "duplicate", canonical
                        if canonical not in seen and len(frontier) < MAX_FRONTIER:
                            seen.add(canonical)
                            frontier.appendleft((canonical, depth))  # the page itself, under its own name: next
                    enqueue(links, depth + 1)
                    yield url if again else doc  # the batch counts a stored page as skipped, never stores it twice
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    @staticmethod
    def _canonical_elsewhere(
        doc: Document, url: str, normalize, hosts: set[str], canonicalised: set[str]
    ) -> str | None:
        """The canonical URL a fetched page defers to, or None when the page is to be analysed itself: it
        names itself (or where it was redirected to), names another site, or names a page set aside already."""
        canonical = doc.meta.get("canonical")
        if doc.status == "failed" or not isinstance(canonical, str):
            return None
        try:
            canonical = normalize(canonical)
        except ValueError:
            return None
        doc.meta["canonical"] = canonical
        landed = doc.meta.get("final_url")
        itself = {url, normalize(landed) if isinstance(landed, str) else url}
        if canonical in itself or _host(canonical) not in hosts or canonical in canonicalised:
            return None
        return canonical
