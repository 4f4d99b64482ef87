"""robots.txt by RFC 9309 and redirects that keep to the crawl, against real HTTP servers on 127.0.0.1.

Each test here failed before Protego, the per-origin robots cache, the 500 KiB cut and the redirect checks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "site"))

from sitefixture import SiteServer  # noqa: E402

from revprompt.core.types import Document  # noqa: E402
from revprompt.sources.crawl import CrawlSource  # noqa: E402
from revprompt.sources.fetch import Fetcher, FetchSettings, fetch_page  # noqa: E402
from revprompt.sources.netguard import address_kind, redirect_refusal  # noqa: E402
from revprompt.sources.robots import MAX_ROBOTS_BYTES, RobotsCache, fetch_robots, origin  # noqa: E402

FAST = {"timeout": 1.0, "retries": 0, "crawl_delay": 0, "max_depth": 1}
TEXT = "<p>" + "Notes from the garden about soil, seeds, watering and the seasons of the year. " * 3 + "</p>"


def page(*links: str) -> str:
    anchors = "".join(f'<a href="{href}">link</a> ' for href in links)
    return f"<html><head><title>Page</title></head><body>{TEXT}<nav>{anchors}</nav></body></html>"


@pytest.fixture
def site():
    with SiteServer() as server:
        yield server


@pytest.fixture
def other():
    """A second site: another origin (another port) on the same loopback address."""
    with SiteServer() as server:
        yield server


@pytest.fixture
def fetcher():
    return Fetcher(FetchSettings.from_options({"timeout": 1.0, "retries": 0}))


@pytest.fixture
def connections(monkeypatch):
    """The hosts urllib3 tried to open a socket to: proves a refused address was never dialled. Anything but
    127.0.0.1 is refused here as well, so even a regression never reaches a real network."""
    import urllib3.util.connection as conn

    opened: list[str] = []
    real = conn.create_connection

    def spy(address, *args, **kwargs):
        opened.append(address[0])
        if address[0] != "127.0.0.1":
            raise ConnectionRefusedError(f"test: no connections to {address[0]}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(conn, "create_connection", spy)
    return opened


def crawl(start: str, **options) -> dict[str, Document]:
    items = list(CrawlSource().discover(start, {**FAST, **options}))
    assert all(isinstance(i, Document) for i in items)
    return {d.uri: d for d in items}


# -- rules: longest match, wildcards, anchors, Crawl-delay --------------------------------------------------
def test_longest_match_wins_over_an_earlier_allow(site, fetcher):
    site.robots = "User-agent: *\nAllow: /\nDisallow: /private\n"
    robots = fetch_robots(site.url("/"), fetcher)
    assert not robots.allowed(site.url("/private/a"))
    assert robots.allowed(site.url("/about"))
    rows = crawl(site.url("/"))
    assert rows[site.url("/private/secret")].error == "disallowed by robots.txt"
    assert site.hits["/private/secret"] == 0


def test_wildcard_in_a_rule_blocks_query_urls(site, fetcher):
    site.robots = "User-agent: *\nDisallow: /*?sort=\n"
    site.extra_pages["/list"] = page("/list?sort=asc", "/list?page=2")
    robots = fetch_robots(site.url("/"), fetcher)
    assert not robots.allowed(site.url("/list?sort=asc"))
    assert not robots.allowed(site.url("/shop/shoes?sort=price&colour=red"))
    assert robots.allowed(site.url("/shop/shoes?colour=red&sort=price"))  # the rule says '?sort=', not '&sort='
    assert robots.allowed(site.url("/list?page=2"))
    rows = crawl(site.url("/list"))
    assert rows[site.url("/list?sort=asc")].error == "disallowed by robots.txt"
    assert rows[site.url("/list?page=2")].status != "failed"
    assert site.hits["/list"] == 2  # the start and ?page=2; never ?sort=asc


def test_dollar_anchors_the_end_of_the_path(site, fetcher):
    site.robots = "User-agent: *\nDisallow: /*.pdf$\nDisallow: /exact$\n"
    robots = fetch_robots(site.url("/"), fetcher)
    assert not robots.allowed(site.url("/files/report.pdf"))
    assert robots.allowed(site.url("/files/report.pdf?download=1"))  # does not end in .pdf
    assert not robots.allowed(site.url("/exact"))
    assert robots.allowed(site.url("/exact/more")) and robots.allowed(site.url("/exactly"))


def test_crawl_delay_of_our_group(site, fetcher):
    site.robots = (
        "User-agent: *\nCrawl-delay: 5\n\nUser-agent: revprompt\nDisallow: /no-bots\nCrawl-delay: 0.25  # be gentle\n"
    )
    robots = fetch_robots(site.url("/"), fetcher)
    assert robots.crawl_delay() == 0.25
    assert not robots.allowed(site.url("/no-bots")) and robots.allowed(site.url("/private/secret"))


# -- size ---------------------------------------------------------------------------------------------------
def test_robots_over_500_kib_is_read_up_to_the_limit(site, fetcher):
    head = "User-agent: *\nDisallow: /private/\nCrawl-delay: 0.2\n"
    padding = "# a long list of old rules, kept for history\n" * (600 * 1024 // 45)
    site.robots = head + padding + "Disallow: /about\n"  # past 500 KiB: never read
    assert len(site.robots.encode()) > MAX_ROBOTS_BYTES
    robots = fetch_robots(site.url("/"), fetcher)
    assert robots.truncated and robots.blocked is None
    assert not robots.allowed(site.url("/private/secret"))
    assert robots.allowed(site.url("/about"))
    assert robots.crawl_delay() == 0.2
    rows = crawl(site.url("/"))
    assert rows[site.url("/private/secret")].error == "disallowed by robots.txt"
    assert site.hits["/private/secret"] == 0


# -- one robots.txt per origin ---------------------------------------------------------------------------------
def test_origin_key():
    assert origin("HTTP://Example.com/a?b") == origin("http://example.com:80/") == "http://example.com:80"
    assert origin("https://example.com/") == "https://example.com:443" != origin("http://example.com/")
    assert origin("http://example.com:8080/") != origin("http://www.example.com:8080/")


def test_after_a_cross_host_redirect_the_landing_hosts_rules_apply(site, other, fetcher):
    site.robots = "User-agent: *\nDisallow: /blog/\n"  # the start host's rules ...
    other.robots = "User-agent: *\nDisallow: /about\n"  # ... and the rules where the crawl lands
    site.redirects["/"] = other.url("/")
    rows = crawl(site.url("/"))
    assert rows[site.url("/")].meta["final_url"] == other.url("/")
    assert rows[other.url("/about")].error == "disallowed by robots.txt"
    assert other.hits["/about"] == 0
    assert rows[other.url("/blog/")].status != "failed" and other.hits["/blog/"] == 1
    assert site.hits["/robots.txt"] == 1 and other.hits["/robots.txt"] == 1

    cache = RobotsCache(fetcher)
    assert cache.for_url(site.url("/x")) is cache.for_url(site.url("/y"))  # fetched once per origin
    assert cache.refusal(site.url("/blog/")) == "disallowed by robots.txt"
    assert cache.refusal(other.url("/blog/")) is None
    assert site.hits["/robots.txt"] == 2


def test_a_redirect_to_a_disallowed_url_is_not_followed(site):
    site.extra_pages["/hub"] = page("/go")
    site.redirects["/go"] = "/private/secret"
    rows = crawl(site.url("/hub"))
    assert rows[site.url("/go")].error == f"disallowed by robots.txt (redirected to {site.url('/private/secret')})"
    assert site.hits["/private/secret"] == 0


# -- redirects that leave the site ----------------------------------------------------------------------------
def test_a_redirect_off_the_crawled_site_is_not_followed(site, other):
    site.extra_pages["/hub"] = page("/out", "/about")
    site.redirects["/out"] = other.url("/about")
    rows = crawl(site.url("/hub"))
    out = rows[site.url("/out")]
    assert out.status == "failed"
    assert out.error == f"redirect leaves the crawled site, not followed ({other.url('/about')})"
    assert out.http_status == 302
    assert other.hits["/about"] == 0 and other.hits["/robots.txt"] == 0
    assert rows[site.url("/about")].status != "failed"


def test_a_redirect_to_a_private_address_is_refused_before_connecting(site, fetcher, connections):
    site.redirects["/intranet"] = "http://10.0.0.1/admin"
    site.redirects["/metadata"] = "http://169.254.169.254/latest/meta-data/"
    got = fetch_page(site.url("/intranet"), fetcher)
    assert got.doc.status == "failed" and got.doc.error == "redirect to a private address refused (10.0.0.1)"
    got = fetch_page(site.url("/metadata"), fetcher)
    assert got.doc.error == "redirect to a private address refused (169.254.169.254)"

    site.extra_pages["/hub"] = page("/intranet")
    rows = crawl(site.url("/hub"))
    assert rows[site.url("/intranet")].error == "redirect to a private address refused (10.0.0.1)"
    assert connections and set(connections) == {"127.0.0.1"}  # 10.0.0.1 and 169.254.* never dialled


def test_private_address_rules():
    assert address_kind("10.1.2.3") == "private" and address_kind("172.20.0.1") == "private"
    assert address_kind("192.168.1.1") == "private" and address_kind("169.254.169.254") == "private"
    assert address_kind("fd00::1") == "private" and address_kind("[fe80::1]") == "private"
    assert address_kind("::ffff:10.0.0.1") == "private"
    assert address_kind("127.0.0.1") == "loopback" and address_kind("localhost") == "loopback"
    assert address_kind("8.8.8.8") == "public" and address_kind("172.32.0.1") == "public"
    # From the web into the network: refused. From an address of the same kind (an intranet crawl): allowed.
    assert redirect_refusal("http://10.0.0.1/", lambda: "public") == "redirect to a private address refused (10.0.0.1)"
    assert redirect_refusal("http://10.0.0.1/", lambda: "loopback") is not None
    assert redirect_refusal("http://10.0.0.1/", lambda: "private") is None
    assert redirect_refusal("http://127.0.0.1:8080/", lambda: "public") is not None
    assert redirect_refusal("http://127.0.0.1:8080/", lambda: "loopback") is None
    assert redirect_refusal("http://8.8.8.8/", lambda: "public") is None
