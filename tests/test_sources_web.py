"""URL fetching, extraction, URL lists, sitemaps and robots.txt against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "site"))

from sitefixture import FAULTS, GOOD_PAGES, LATIN1_TEXT, SiteServer  # noqa: E402

from revprompt.core.errors import UserError  # noqa: E402
from revprompt.core.types import Document  # noqa: E402
from revprompt.sources.extract import extract_links, extract_page  # noqa: E402
from revprompt.sources.fetch import (  # noqa: E402
    USER_AGENT,
    Fetcher,
    FetchSettings,
    decode_body,
    fetch_page,
    is_http_url,
    normalize_url,
)
from revprompt.sources.robots import fetch_robots  # noqa: E402
from revprompt.sources.sitemap import SitemapError, SitemapSource, parse_sitemap  # noqa: E402
from revprompt.sources.web import UrlListSource, UrlSource, read_url_list  # noqa: E402

FAST = {"timeout": 0.5, "retries": 0}


@pytest.fixture(scope="module")
def site():
    with SiteServer(slow_seconds=3.0) as server:
        yield server


@pytest.fixture
def fetcher():
    return Fetcher(FetchSettings.from_options(FAST))


# -- URLs and charsets ----------------------------------------------------------------------------------
def test_url_helpers():
    assert is_http_url("https://example.com/a") and is_http_url("http://127.0.0.1:8080")
    assert not is_http_url("example.com") and not is_http_url("ftp://x.org/") and not is_http_url("a b http://x")
    assert normalize_url("HTTPS://Example.COM:443/a#frag") == "https://example.com/a"
    assert normalize_url("http://example.com") == "http://example.com/"
    assert normalize_url("http://example.com:8080/p?q=1") == "http://example.com:8080/p?q=1"


def test_decode_body_charsets():
    assert decode_body("café".encode("cp1252"), "iso-8859-1") == "café"
    assert decode_body(b'<meta charset="windows-1252"><p>caf\xe9</p>').endswith("café</p>")
    assert decode_body("naïve résumé".encode("latin-1")) == "naïve résumé"  # undeclared, not UTF-8
    assert decode_body("Привет мир, как дела? Это тест.".encode("cp1251")) == "Привет мир, как дела? Это тест."
    assert decode_body("é".encode(), "nonsense-charset") == "é"
    assert decode_body(b"\xef\xbb\xbfhello") == "hello"


def test_extract_links_rules():
    html = """<html><head><base href="/docs/"></head><body>
      <a href="intro">Intro</a> <a href="/a#x">A</a> <a href="/a">A again</a> <a href="#top">top</a>
      <a href="mailto:x@y.z">mail</a> <a href="javascript:void(0)">js</a> <a href="/img/photo.JPG">photo</a>
      <a href="https://other.example/page">other</a> <a href="report.pdf">pdf</a>
    </body></html>"""
    links = extract_links(html, "http://site.test/start")
    assert links == ["http://site.test/docs/intro", "http://site.test/a", "https://other.example/page"]
    assert extract_links("", "http://x/") == []


def test_extract_page_keeps_title_and_description():
    html = """<html><head><title> Shop &amp; Garden
      </title><meta name="description" content="Tools for gardens."></head>
      <body><article><h1>Heading</h1><p>Some real content about garden tools and how to use them.</p>
      </article></body></html>"""
    page = extract_page(html)
    assert page.title == "Shop & Garden"
    assert page.description == "Tools for gardens."
    assert "garden tools" in page.markdown


# -- fetching pages ---------------------------------------------------------------------------------------
def test_good_page_is_markdown_with_title_and_description(site, fetcher):
    doc = fetch_page(site.url("/blog/first-post"), fetcher).doc
    assert doc.status == "pending" and doc.error is None
    assert doc.http_status == 200 and doc.content_type == "text/html"
    assert doc.title == "How to start seedlings indoors"
    assert doc.description == "A step-by-step guide to raising seedlings on a windowsill."
    assert "# How to start seedlings indoors" in doc.text and "## Light and temperature" in doc.text
    assert "<p>" not in doc.text
    assert USER_AGENT in site.user_agents


def test_plain_text_page(site, fetcher):
    doc = fetch_page(site.url("/notes.txt"), fetcher).doc
    assert doc.status == "pending" and doc.text.startswith("Plain notes about mulching.")


@pytest.mark.parametrize("path", ["/latin1", "/latin1-meta"])
def test_non_utf8_pages_are_decoded(site, fetcher, path):
    doc = fetch_page(site.url(path), fetcher).doc
    assert doc.status == "pending"
    assert LATIN1_TEXT[:40] in doc.text
    assert "\ufffd" not in doc.text


@pytest.mark.parametrize(
    "path, error, http_status",
    [
        ("/slow", "timed out after 0.5s waiting for the server", None),
        ("/missing", "HTTP 404", 404),
        ("/error", "HTTP 500", 500),
        ("/loop", "too many redirects (more than 5)", None),
        ("/image", "not a text/HTML page (image/png)", 200),
        ("/huge", "page larger than 5 MB", 200),
        ("/empty", "no text found on the page", 200),
    ],
)
def test_faults_become_failed_documents(site, fetcher, path, error, http_status):
    doc = fetch_page(site.url(path), fetcher).doc
    assert doc.status == "failed"
    assert doc.error == error
    assert doc.http_status == http_status
    assert doc.uri == site.url(path)


def test_faults_cover_the_fault_list():
    assert set(FAULTS) == {"/slow", "/missing", "/error", "/loop", "/image", "/huge", "/empty"}


def test_size_cap_is_configurable(site):
    small = Fetcher(FetchSettings.from_options({**FAST, "max_bytes": 200}))
    doc = fetch_page(site.url("/about"), small).doc
    assert doc.status == "failed" and doc.error == "page larger than 200 bytes"


def test_redirect_is_followed_and_the_asked_uri_kept(site, fetcher):
    page = fetch_page(site.url("/redirect"), fetcher)
    assert page.doc.status == "pending" and page.doc.uri == site.url("/redirect")
    assert page.doc.meta["final_url"] == site.url("/about")
    assert page.doc.title == "About the garden"


def test_transient_503_is_retried_once(site):
    site.hits["/flaky"] = 0
    retrying = Fetcher(FetchSettings.from_options({"timeout": 0.5, "retries": 1, "retry_backoff": 0}))
    doc = fetch_page(site.url("/flaky"), retrying).doc
    assert doc.status == "pending" and "Second time lucky" in doc.text
    assert site.hits["/flaky"] == 2
    no_retry = Fetcher(FetchSettings.from_options(FAST))
    assert fetch_page(site.url("/flaky"), no_retry).doc.error == "HTTP 503"


def test_connection_refused_is_a_failed_row(fetcher):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once the socket is closed
    doc = fetch_page(f"http://127.0.0.1:{port}/", fetcher).doc
    assert doc.status == "failed" and doc.error == "cannot connect: connection refused"


def test_url_source_loads_pages(site):
    source = UrlSource()
    assert source.claims(site.url("/about"), {}) and not source.claims("not a url", {})
    assert list(source.discover(site.url("/about#team"), {})) == [site.url("/about")]
    doc = source.load(site.url("/about"), FAST)
    assert doc.source == "url" and "forty raised beds" in doc.text


# -- URL lists ------------------------------------------------------------------------------------------
def test_url_list_file(tmp_path, site):
    f = tmp_path / "urls.txt"
    f.write_text(f"# my pages\n\n{site.url('/about')}\n  {site.url('/blog/')}  \nnot a url\n# {site.url('/x')}\n")
    items = read_url_list(str(f), "urls")
    assert items[:2] == [site.url("/about"), site.url("/blog/")]
    bad = items[2]
    assert isinstance(bad, Document) and bad.status == "failed" and bad.error == "not an http(s) URL"
    assert len(items) == 3
    assert not UrlListSource().claims(str(f), {})


def test_url_list_errors(tmp_path):
    with pytest.raises(UserError, match="cannot read URL list"):
        read_url_list(str(tmp_path / "absent.txt"), "urls")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    with pytest.raises(UserError, match="lists no URLs"):
        read_url_list(str(empty), "urls")


# -- robots.txt -------------------------------------------------------------------------------------------
def test_robots_rules_delay_and_sitemaps(site, fetcher):
    site.robots = (
        "User-agent: *\nDisallow: /private/\nCrawl-delay: 2\n\nUser-agent: revprompt\nDisallow: /no-bots\n"
        f"Crawl-delay: 0.25\n\nSitemap: {site.url('/sitemap_index.xml')}\n"
    )
    try:
        robots = fetch_robots(site.url("/blog/"), fetcher)
    finally:
        site.robots = None
    assert robots.allowed(site.url("/about"))
    assert not robots.allowed(site.url("/no-bots"))  # our own group applies, not '*'
    assert robots.allowed(site.url("/private/secret"))
    assert robots.crawl_delay() == 0.25
    assert robots.sitemaps == [site.url("/sitemap_index.xml")]


def test_robots_unavailable_rules(site, fetcher):
    site.extra_pages["/robots.txt"] = ""  # served as HTML, 200, empty: no rules
    try:
        assert fetch_robots(site.url("/"), fetcher).allowed(site.url("/private/secret"))
    finally:
        del site.extra_pages["/robots.txt"]
    # 4xx: no robots.txt, everything allowed; 5xx or unreachable: nothing allowed (RFC 9309)
    try:
        site.robots_status = 404
        assert fetch_robots(site.url("/"), fetcher).allowed(site.url("/private/secret"))
        site.robots_status = 500
        r = fetch_robots(site.url("/"), fetcher)
        assert r.blocked == "robots.txt unavailable (HTTP 500)"
        assert not r.allowed(site.url("/about"))
    finally:
        site.robots_status = 200
    # A port held bound but never listening: connections to it are refused, and no server started meanwhile
    # (another test's, a thread's) can take it, as one did once between closing a probe socket and the fetch.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        r = fetch_robots(f"http://127.0.0.1:{port}/", fetcher)
    assert r.blocked and r.blocked.startswith("robots.txt unavailable (cannot connect")
    assert not r.allowed(f"http://127.0.0.1:{port}/page")


# -- sitemaps -------------------------------------------------------------------------------------------
def test_sitemap_claims():
    s = SitemapSource()
    assert s.claims("https://example.com/sitemap.xml", {})
    assert s.claims("https://example.com/post-sitemap.xml.gz", {})
    assert s.claims("https://example.com/feeds/pages.xml", {})
    assert s.claims("https://example.com/?sitemap=1", {})
    assert not s.claims("https://example.com/about", {})
    assert not s.claims("sitemap.xml", {})


def test_sitemap_index_with_gzip_and_a_missing_child(site):
    items = SitemapSource().discover(site.url("/sitemap_index.xml"), FAST)
    urls = [i for i in items if isinstance(i, str)]
    failed = [i for i in items if isinstance(i, Document)]
    assert urls == [site.url(p) for p in GOOD_PAGES + FAULTS]
    assert [(d.uri, d.status, d.error) for d in failed] == [
        (site.url("/sitemaps/missing.xml"), "failed", "sitemap: HTTP 404")
    ]


def test_sitemap_from_site_root_reads_robots(site):
    items = SitemapSource().discover(site.url("/"), FAST)
    assert site.url("/blog/first-post") in items and site.url("/huge") in items


def test_site_root_without_sitemap_lines_tries_sitemap_xml(site):
    site.robots = "User-agent: *\nDisallow:\n"
    try:
        items = SitemapSource().discover(site.url("/"), FAST)
    finally:
        site.robots = None
    assert len(items) == 1 and items[0].uri == site.url("/sitemap.xml") and items[0].error == "sitemap: HTTP 404"


def test_sitemap_max_pages(site):
    items = SitemapSource().discover(site.url("/sitemap_index.xml"), {**FAST, "max_pages": 3})
    assert items == [site.url(p) for p in GOOD_PAGES[:3]]


def test_parse_sitemap_forms():
    import gzip

    xml = (
        b'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        b"<url><loc> https://a.test/1 </loc><lastmod>2024-01-01</lastmod></url><url><loc>/rel</loc></url></urlset>"
    )
    assert parse_sitemap(xml, "https://a.test/sitemap.xml") == ("urlset", ["https://a.test/1", "https://a.test/rel"])
    assert parse_sitemap(gzip.compress(xml), "https://a.test/s.xml.gz")[1][0] == "https://a.test/1"
    assert parse_sitemap(b"https://a.test/x\nhttps://a.test/y\n", "https://a.test/s.txt") == (
        "urlset",
        ["https://a.test/x", "https://a.test/y"],
    )
    index = (
        b'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><sitemap><loc>https://a.test/s1.xml'
        b"</loc></sitemap></sitemapindex>"
    )
    assert parse_sitemap(index, "https://a.test/") == ("sitemapindex", ["https://a.test/s1.xml"])
    with pytest.raises(SitemapError, match="not a sitemap"):
        parse_sitemap(b"<html><body>hi</body></html>", "https://a.test/")
    with pytest.raises(SitemapError, match="broken gzip"):
        parse_sitemap(b"\x1f\x8bnot really gzip", "https://a.test/")
    # External entities are never resolved (no file or network reads from a hostile sitemap)
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE u [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>https://a.test/&e;</loc></url></urlset>'
    )
    kind, urls = parse_sitemap(xxe, "https://a.test/")
    assert all("root:" not in u for u in urls)


def test_source_routing(tmp_path, site):
    from revprompt.core.batch import pick_source

    page = tmp_path / "page.html"
    page.write_text("<p>hi</p>")
    assert pick_source(site.url("/sitemap_index.xml"), {}).name == "sitemap"
    assert pick_source(site.url("/about"), {}).name == "url"
    assert pick_source(str(page), {}).name == "file"
    assert pick_source("some pasted text", {}).name == "text"
    assert pick_source(site.url("/"), {}, "crawl").name == "crawl"
