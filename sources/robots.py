"""robots.txt: what a crawl may fetch, how fast, and which sitemaps a site announces.

Rules are read as RFC 9309 says, by Protego (Scrapy's parser): the most specific (longest) matching rule wins,
so `Allow: /` does not open `Disallow: /private`; `*` and `$` work in paths (`Disallow: /*?sort=`,
`Disallow: /*.pdf$`); our own group wins over `*`. urllib's parser took the first matching rule and read
wildcards literally, which let disallowed pages through.

Each scheme+host+port has its own robots.txt (RFC 9309, section 2.3): `RobotsCache` fetches one per origin, so
after `example.com` redirects to `www.example.com` the rules of `www.` apply to its pages. Only the first
500 KiB of a robots.txt are read (the RFC's minimum): a huge file is cut at its last whole line and parsed,
not ignored.

Unavailability follows RFC 9309: a robots.txt that answers 4xx means "no rules" (crawl everything); one that
cannot be fetched at all (5xx, timeout, refused connection) means "crawl nothing" until it can be read.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from urllib.parse import urljoin, urlsplit

from protego import Protego

from .fetch import Fetcher, FetchError, site_root

log = logging.getLogger("revprompt.sources.robots")

MAX_ROBOTS_BYTES = 500 * 1024  # RFC 9309, 2.5: crawlers must read at least 500 KiB
DISALLOWED = "disallowed by robots.txt"


@dataclass
class Robots:
    url: str
    user_agent: str
    #: the parsed rules; None when the site has none (4xx, empty, not text)
    parser: Protego | None = None
    #: why nothing may be fetched (robots.txt unreachable), or None
    blocked: str | None = None
    sitemaps: list[str] = field(default_factory=list)
    #: the file was longer than MAX_ROBOTS_BYTES and only its start was parsed
    truncated: bool = False

    def allowed(self, url: str) -> bool:
        if self.blocked:
            return False
        if self.parser is None:
            return True
        try:
            return self.parser.can_fetch(url, self.user_agent)
        except Exception:  # a malformed rule must not stop the crawl: no rule applies
            return True

    def refusal(self, url: str) -> str | None:
        """The failed row's error for a URL we may not fetch, or None when it may be fetched."""
        if self.allowed(url):
            return None
        return self.blocked or DISALLOWED

    def crawl_delay(self) -> float | None:
        """The Crawl-delay of the group that governs us (ours, else '*'), or None. Fractions are kept."""
        if self.parser is None:
            return None
        try:
            return self.parser.crawl_delay(self.user_agent)
        except Exception:
            return None


def origin(url: str) -> str:
    """scheme://host:port, with the default port spelled out: the unit a robots.txt governs."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    port = port or {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


def _whole_lines(body: bytes) -> bytes:
    """A cut-off body without its last, partial line: half a rule (`Allow: /pri`) may mean something else."""
    end = body.rfind(b"\n")
    return body[: end + 1] if end >= 0 else b""


def fetch_robots(url: str, fetcher: Fetcher) -> Robots:
    """The robots.txt that governs `url` (any URL on the site)."""
    robots_url = urljoin(site_root(url), "/robots.txt")
    ua = fetcher.settings.user_agent
    small = Fetcher(replace(fetcher.settings, max_bytes=MAX_ROBOTS_BYTES), auth=getattr(fetcher, "auth", None))
    try:
        resp = small.get(robots_url, truncate=True)
    except FetchError as exc:
        if exc.http_status is not None and 400 <= exc.http_status < 500:
            return Robots(robots_url, ua)  # no robots.txt: no rules
        log.warning("robots.txt at %s unavailable (%s): nothing on this site is crawled", robots_url, exc)
        return Robots(robots_url, ua, blocked=f"robots.txt unavailable ({exc})")
    readable = resp.media_type == "" or resp.media_type.startswith("text/")
    if not readable:
        log.info("robots.txt at %s is %s, not text: treated as empty", robots_url, resp.media_type)
        return Robots(robots_url, ua)
    if resp.truncated:
        log.info("robots.txt at %s is larger than %d KiB: only its start is read", robots_url, MAX_ROBOTS_BYTES // 1024)
        resp.body = _whole_lines(resp.body)
    parser = Protego.parse(resp.text())
    sitemaps = [urljoin(robots_url, u.strip()) for u in parser.sitemaps if u.strip()]
    return Robots(robots_url, ua, parser, sitemaps=sitemaps, truncated=resp.truncated)


class RobotsCache:
    """robots.txt per scheme+host+port, each fetched once, shared by a crawl's threads.

    A crawl meets more than one origin (the start URL's host, the host it redirects to, http and https): each
    origin's own rules decide for its URLs, never the start host's.
    """

    def __init__(self, fetcher: Fetcher):
        self._fetcher = fetcher
        self._lock = threading.Lock()
        self._rules: dict[str, Robots] = {}

    def for_url(self, url: str) -> Robots:
        key = origin(url)
        with self._lock:  # one fetch per origin, even when two workers ask at once
            robots = self._rules.get(key)
            if robots is None:
                robots = self._rules[key] = fetch_robots(url, self._fetcher)
            return robots

    def refusal(self, url: str) -> str | None:
        return self.for_url(url).refusal(url)
