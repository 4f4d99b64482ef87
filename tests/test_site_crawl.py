"""The crawl source against the loopback site: scope, limits, robots.txt, delay, concurrency, resume."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "site"))

from sitefixture import SiteServer  # noqa: E402

from revprompt.core.types import Document  # noqa: E402
from revprompt.sources.base import SourceContext  # noqa: E402
from revprompt.sources.crawl import CrawlSource  # noqa: E402

FAST = {"timeout": 1.0, "retries": 0, "crawl_delay": 0, "max_depth": 3}

# From / with depth 3: the pages, the disallowed one, the broken links; not /logo.png (an asset), not
# mailto:, not the other host, and not /blog/archive/older-notes (depth 4).
EXPECTED = {
    "/": ("done", None),
    "/about": ("done", None),
    "/blog/": ("done", None),
    "/blog/first-post": ("done", None),
    "/blog/second-post": ("done", None),
    "/blog/archive/old-notes": ("done", None),
    "/private/secret": ("failed", "disallowed by robots.txt"),
    "/missing": ("failed", "HTTP 404"),
    "/image": ("failed", "not a text/HTML page (image/png)"),
}


@pytest.fixture
def site():
    with SiteServer() as server:
        yield server


def rows(items, site) -> dict[str, tuple[str, str | None]]:
    out = {}
    for item in items:
        assert isinstance(item, Document)
        path = item.uri[len(site.base_url) :]
        assert path not in out, f"{path} yielded twice"
        out[path] = ("failed" if item.status == "failed" else "done", item.error)
    return out


def test_crawl_scope_statuses_and_robots(site):
    items = list(CrawlSource().discover(site.url("/"), FAST))
    assert rows(items, site) == EXPECTED
    assert site.hits["/private/secret"] == 0  # disallowed: never fetched
    assert site.hits["/logo.png"] == 0 and site.hits["/blog/archive/older-notes"] == 0
    assert site.hits["/robots.txt"] == 1
    assert all(site.hits[p] == 1 for p in EXPECTED if p != "/private/secret")
    home = next(d for d in items if d.uri == site.url("/"))
    assert home.source == "crawl" and home.meta["depth"] == 0
    assert site.url("/about") in home.meta["links"] and all(u.startswith(site.base_url) for u in home.meta["links"])
    assert "Loopback Gardens" in home.text and home.title == "Loopback Gardens – home"


def test_crawl_limits(site):
    items = list(CrawlSource().discover(site.url("/"), {**FAST, "max_pages": 3}))
    assert len(items) == 3 and items[0].uri == site.url("/")
    shallow = rows(CrawlSource().discover(site.url("/"), {**FAST, "max_depth": 1}), site)
    assert set(shallow) == {"/", "/about", "/blog/", "/private/secret", "/missing", "/image"}
    only_start = rows(CrawlSource().discover(site.url("/about"), {**FAST, "max_depth": 0}), site)
    assert set(only_start) == {"/about"}


def test_crawl_delay_from_robots_and_bounded_concurrency(site):
    site.robots = "User-agent: *\nDisallow: /private/\nCrawl-delay: 0.3\n"
    items = list(
        CrawlSource().discover(site.url("/blog/"), {**FAST, "crawl_delay": None, "concurrency": 3, "max_depth": 1})
    )
    assert len(items) == 4  # /blog/, its two posts and /
    starts = sorted(t for path, times in site.times.items() if path != "/robots.txt" for t in times)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert min(gaps) >= 0.25, gaps  # one request per Crawl-delay, whatever the pool size

    site.times.clear()
    site.max_in_flight = 0
    site.page_delay = 0.3
    list(CrawlSource().discover(site.url("/"), {**FAST, "concurrency": 2}))
    assert site.max_in_flight == 2  # pages were fetched in parallel, never more than two at once


def test_start_that_redirects_to_another_host_is_followed(site):
    site.redirect_localhost = True  # http://localhost:PORT/ -> http://127.0.0.1:PORT/
    start = site.url("/").replace("127.0.0.1", "localhost")
    items = list(CrawlSource().discover(start, {**FAST, "max_depth": 1}))
    # The start row keeps the address asked for; the crawl goes on where the site landed.
    assert items[0].uri == start and items[0].status != "failed" and items[0].meta["final_url"] == site.url("/")
    uris = [d.uri for d in items]
    assert site.url("/about") in uris and site.url("/blog/") in uris
    assert site.url("/") not in uris  # the landing page is not fetched a second time
    assert len(uris) == len(set(uris))


def test_unreadable_robots_blocks_the_crawl(site):
    site.robots_status = 503
    items = list(CrawlSource().discover(site.url("/"), {**FAST, "retries": 0}))
    assert [(d.uri, d.status, d.error) for d in items] == [
        (site.url("/"), "failed", "robots.txt unavailable (HTTP 503)")
    ]
    assert site.hits["/"] == 0


def test_resumed_crawl_reuses_stored_links_instead_of_fetching(site):
    first = {d.uri: d for d in CrawlSource().discover(site.url("/"), FAST)}
    site.hits.clear()
    done = {site.url("/"), site.url("/blog/")}
    stored = {uri: first[uri].meta for uri in done}
    items = list(CrawlSource().discover(site.url("/"), SourceContext(FAST, done=done, stored_meta=stored.get)))
    skipped = [i for i in items if isinstance(i, str)]
    fetched = {i.uri for i in items if isinstance(i, Document)}
    assert sorted(skipped) == sorted(done)
    assert site.hits["/"] == 0 and site.hits["/blog/"] == 0
    assert fetched | done == set(first)  # the same site, found through the stored links


def test_resumed_crawl_counts_stored_pages_towards_the_limit(site):
    done = {site.url("/"), site.url("/about")}
    meta = {
        site.url("/"): {"links": [site.url("/about"), site.url("/blog/"), site.url("/missing")]},
        site.url("/about"): {"links": []},
    }
    items = list(
        CrawlSource().discover(site.url("/"), SourceContext({**FAST, "max_pages": 3}, done=done, stored_meta=meta.get))
    )
    new = [i for i in items if isinstance(i, Document)]
    assert len(new) == 1 and new[0].uri == site.url("/blog/")


def test_resumed_crawl_keeps_following_the_host_the_start_redirected_to(site):
    site.redirect_localhost = True
    start = site.url("/").replace("127.0.0.1", "localhost")
    first = list(CrawlSource().discover(start, {**FAST, "max_depth": 1}))
    meta = {start: first[0].meta}
    again = list(
        CrawlSource().discover(start, SourceContext({**FAST, "max_depth": 1}, done={start}, stored_meta=meta.get))
    )
    assert again[0] == start  # stored: not fetched again
    assert {d.uri for d in again[1:]} == {d.uri for d in first[1:]}
