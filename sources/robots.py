"""robots.txt: what a crawl may fetch, how fast, and which sitemaps a site announces.

Unavailability follows RFC 9309: a robots.txt that answers 4xx means "no rules" (crawl everything); one that
cannot be fetched at all (5xx, timeout, refused connection) means "crawl nothing" until it can be read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from urllib.parse import urljoin
from urllib.robotparser import RobotFileParser

from .fetch import FetchError, Fetcher, site_root

log = logging.getLogger("revprompt.sources.robots")

MAX_ROBOTS_BYTES = 512 * 1024  # RFC 9309 asks crawlers to read at least 500 KiB


@dataclass
class Robots:
    url: str
    user_agent: str
    parser: RobotFileParser
    #: why nothing may be fetched (robots.txt unreachable), or None
    blocked: str | None = None
    sitemaps: list[str] = field(default_factory=list)

    def allowed(self, url: str) -> bool:
        if self.blocked:
            return False
        try:
            return self.parser.can_fetch(self.user_agent, url)
        except Exception:  # a malformed rule must not stop the crawl: no rule applies
            return True

    #: Crawl-delay per user-agent token, fractions allowed (urllib's parser only reads whole seconds)
    delays: dict[str, float] = field(default_factory=dict)

    def crawl_delay(self) -> float | None:
        """The Crawl-delay of the group naming us, else of '*', else None."""
        token = self.user_agent.split("/")[0].lower()
        for agent, delay in self.delays.items():
            if agent != "*" and agent in token:
                return delay
        return self.delays.get("*")


def parse_crawl_delays(lines: list[str]) -> dict[str, float]:
    delays: dict[str, float] = {}
    agents: list[str] = []
    in_agents = False  # consecutive User-agent lines share the rules that follow them
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if not key:
            continue
        if key == "user-agent":
            if not in_agents:
                agents = []
            agents.append(value.lower())
            in_agents = True
            continue
        in_agents = False
        if key == "crawl-delay":
            try:
                delay = float(value)
            except ValueError:
                continue
            if delay >= 0:
                for agent in agents:
                    delays.setdefault(agent, delay)
    return delays


def fetch_robots(url: str, fetcher: Fetcher) -> Robots:
    """The robots.txt that governs `url` (any URL on the site)."""
    robots_url = urljoin(site_root(url), "/robots.txt")
    parser = RobotFileParser(robots_url)
    ua = fetcher.settings.user_agent
    small = Fetcher(replace(fetcher.settings, max_bytes=MAX_ROBOTS_BYTES))
    try:
        resp = small.get(robots_url)
    except FetchError as exc:
        if exc.http_status is not None and 400 <= exc.http_status < 500:
            parser.allow_all = True  # no robots.txt: no rules
            parser.modified()
            return Robots(robots_url, ua, parser)
        if str(exc).startswith("page larger than"):
            # Too long to read whole: parse nothing rather than half a rule set (RFC 9309 allows a cap).
            parser.allow_all = True
            parser.modified()
            return Robots(robots_url, ua, parser)
        log.warning("robots.txt at %s unavailable (%s): nothing on this site is crawled", robots_url, exc)
        parser.disallow_all = True
        return Robots(robots_url, ua, parser, blocked=f"robots.txt unavailable ({exc})")
    readable = resp.media_type == "" or resp.media_type.startswith("text/")
    text = resp.text() if readable else ""
    if not readable:
        log.info("robots.txt at %s is %s, not text: treated as empty", robots_url, resp.media_type)
    lines = text.splitlines()
    parser.parse(lines)
    sitemaps = []
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip().lower() == "sitemap" and value.strip():
            sitemaps.append(urljoin(robots_url, value.strip()))
    return Robots(robots_url, ua, parser, sitemaps=sitemaps, delays=parse_crawl_delays(lines))
