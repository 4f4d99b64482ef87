"""One page, one analysis (issue 13): URL normalisation, <link rel="canonical">, and identical texts analysed once.

A loopback site (tests/fixtures/site) serves the pages, a stub engine counts what the model would be asked,
and the rows go to a real DuckDB file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "site"))

from sitefixture import SiteServer  # noqa: E402
from test_batch_site import StopAfter, StubEngine  # noqa: E402

from revprompt.core.batch import BatchRunner  # noqa: E402
from revprompt.core.store import MIGRATIONS, SCHEMA_VERSION, Store  # noqa: E402
from revprompt.sources.crawl import CrawlSource  # noqa: E402
from revprompt.sources.fetch import ParamRules, normalize_url  # noqa: E402

FAST = {"timeout": 2.0, "retries": 0, "crawl_delay": 0, "max_depth": 3, "max_pages": None, "retry_failed": False}


def page(title: str, topic: str, links=(), canonical: str | None = None) -> str:
    head = f"<title>{title}</title>" + (f'<link rel="canonical" href="{canonical}">' if canonical else "")
    nav = "".join(f'<li><a href="{href}">link {i}</a></li>' for i, href in enumerate(links))
    return (
        f"<html><head>{head}</head><body><nav><ul>{nav}</ul></nav><main><h1>{title}</h1>"
        f"<p>This page is about {topic}. It explains {topic} step by step for people who have never tried it, "
        f"with the tools you need, the mistakes beginners make and how long each stage takes.</p>"
        f"<p>Once {topic} works, the second part shows how to keep it working through the seasons.</p>"
        f"</main></body></html>"
    )


@pytest.fixture
def site():
    with SiteServer() as server:
        yield server


def run(store, site, start, engine=None, progress=None, **options):
    engine = engine or StubEngine()
    runner = BatchRunner(
        store, lambda: engine, {"model": "stub"}, analyzers=[], options={**FAST, **options}, progress=progress
    )
    return runner.run("analyze --crawl", [site.url(start)], "crawl"), engine


def rows(store, run_id, site) -> dict[str, dict]:
    docs = store.documents(run_id)
    assert len({d["uri"] for d in docs}) == len(docs), "a page stored twice"
    return {d["uri"].replace(site.base_url, ""): d for d in docs}


# -- URL normalisation ----------------------------------------------------------------------------------
def test_normalize_url_drops_fragments_trackers_and_session_ids_and_sorts_the_query():
    assert normalize_url("HTTP://Example.COM:80/a?b=2&a=1#top") == "http://example.com/a?a=1&b=2"
    assert (
        normalize_url("https://example.com/a?utm_source=news&utm_Medium=mail&gclid=x&fbclid=y&id=7")
        == "https://example.com/a?id=7"
    )
    assert (
        normalize_url("https://example.com/a;jsessionid=F00?PHPSESSID=1&sid=2&sessionid=3&q=")
        == "https://example.com/a?q="
    )
    assert normalize_url("https://example.com/caf%c3%a9?q=a%20b") == "https://example.com/caf%C3%A9?q=a+b"
    assert normalize_url("http://u:pw@example.com") == "http://u:pw@example.com/"  # a resumed crawl needs them


def test_param_rules_are_configurable():
    rules = ParamRules.from_options({"strip_params": "search, sort*", "keep_params": "sid"})
    assert (
        normalize_url("http://x.test/p?search=a&sorting=1&sid=9&utm_id=3&page=2", rules)
        == "http://x.test/p?page=2&sid=9"
    )
    everything = ParamRules.from_options({"keep_params": "*"})
    assert normalize_url("http://x.test/p?utm_source=a&b=1#f", everything) == "http://x.test/p?b=1&utm_source=a"


def test_crawl_fetches_one_spelling_of_each_page(site):
    spellings = [
        "/guide",
        "/guide#top",
        "/guide?utm_source=nav&utm_medium=menu",
        "/guide?gclid=abc",
        "/guide?PHPSESSID=1f2e",
        "/guide;jsessionid=XYZ",
        "/list?b=2&a=1",
        "/list?a=1&b=2#x",
    ]
    site.extra_pages["/hub"] = page("Hub", "finding your way around", spellings)
    site.extra_pages["/guide"] = page("Guide", "planting tomatoes")
    site.extra_pages["/list"] = page("List", "choosing seeds")
    items = list(CrawlSource().discover(site.url("/hub"), FAST))
    assert sorted(d.uri.replace(site.base_url, "") for d in items) == ["/guide", "/hub", "/list?a=1&b=2"]
    assert site.hits["/guide"] == 1 and site.hits["/list"] == 1 and site.hits["/guide;jsessionid=XYZ"] == 0

    site.hits.clear()  # --strip-params search: the copies rustdoc makes of a page are one URL
    site.extra_pages["/hub"] = page("Hub", "finding your way around", ["/guide?search=a", "/guide?search=b"])
    items = list(CrawlSource().discover(site.url("/hub"), {**FAST, "strip_params": "search"}))
    assert sorted(d.uri.replace(site.base_url, "") for d in items) == ["/guide", "/hub"]


# -- canonical ------------------------------------------------------------------------------------------
def test_a_page_whose_canonical_is_another_is_stored_as_its_duplicate_and_the_canonical_analysed_once(site, db_path):
    product = site.url("/product")
    site.extra_pages["/shop"] = page("Shop", "our shop", ["/product?color=red", "/print/product"])
    site.extra_pages["/product"] = page("Product", "the red watering can", canonical=product)
    site.extra_pages["/print/product"] = page(
        "Product (print)", "the red watering can, printable", canonical="/product"
    )  # relative: resolved against the page
    with Store(db_path) as store:
        summary, engine = run(store, site, "/shop", max_depth=1)
        got = rows(store, summary.run_id, site)
    assert set(got) == {"/shop", "/product?color=red", "/print/product", "/product"}
    for alternate in ("/product?color=red", "/print/product"):
        assert (got[alternate]["status"], got[alternate]["duplicate_of"], got[alternate]["canonical"]) == (
            "duplicate",
            product,
            product,
        )
        assert got[alternate]["analyzed_at"] is None
    assert got["/product"]["status"] == "done" and got["/product"]["canonical"] == product
    assert got["/product"]["duplicate_of"] is None
    assert got["/shop"]["canonical"] is None  # it declares none
    assert len(engine.texts) == 2  # /shop and /product; the alternates were not analysed
    assert summary.duplicates == 2 and summary.done == 2
    # /product was reached only through the canonicals (at the depth of the page naming it) and fetched once
    assert site.hits["/product"] == 2  # /product?color=red and /product itself


def test_canonical_beyond_the_depth_limit_loops_and_other_sites(site, db_path):
    site.extra_pages["/a"] = page("A", "apples", canonical="/b")
    site.extra_pages["/b"] = page("B", "bananas", canonical="/a")  # names /a back: one of them is analysed
    site.extra_pages["/c"] = page("C", "cherries", canonical="https://elsewhere.example/c")
    with Store(db_path) as store:
        summary, engine = run(store, site, "/a", max_depth=0)  # /b is queued all the same: it *is* the page
        got = rows(store, summary.run_id, site)
        assert (got["/a"]["status"], got["/a"]["duplicate_of"]) == ("duplicate", site.url("/b"))
        assert got["/b"]["status"] == "done" and got["/b"]["canonical"] == site.url("/a")
        summary, engine = run(store, site, "/c", max_depth=0)
        got = rows(store, summary.run_id, site)
    assert got["/c"]["status"] == "done" and got["/c"]["canonical"] == "https://elsewhere.example/c"
    assert engine.texts and "cherries" in engine.texts[0]


def test_resumed_crawl_still_analyses_the_canonical(site, db_path):
    site.extra_pages["/variant"] = page("Variant", "the blue rake", canonical="/rake")
    site.extra_pages["/rake"] = page("Rake", "the blue rake, the page itself")
    with Store(db_path) as store:
        with pytest.raises(KeyboardInterrupt):  # stopped right after the alternate is stored
            run(store, site, "/variant", progress=StopAfter(1), max_depth=0)
        summary, engine = run(store, site, "/variant", max_depth=0)
        got = rows(store, summary.run_id, site)
    assert summary.skipped == 1 and site.hits["/variant"] == 1
    assert got["/variant"]["status"] == "duplicate" and got["/rake"]["status"] == "done"


# -- identical texts ------------------------------------------------------------------------------------
def test_identical_pages_are_analysed_once_and_reported_as_duplicates(site, db_path):
    """The rustdoc case: every `?search=...` spelling of a page serves the same page."""
    searches = [f"/std/index.html?search={q}" for q in ("vec", "map", "iter", "str", "fs", "io", "env")]
    site.extra_pages["/std/index.html"] = page("std", "the Rust standard library", searches + ["/std/vec.html"])
    site.extra_pages["/std/vec.html"] = page("Vec", "growable arrays")
    with Store(db_path) as store:
        summary, engine = run(store, site, "/std/index.html")
        got = rows(store, summary.run_id, site)
        first = site.url("/std/index.html")
        copies = {p for p, r in got.items() if r["status"] == "duplicate"}
        assert copies == set(searches)
        assert all(
            got[p]["duplicate_of"] == first and got[p]["content_hash"] == got["/std/index.html"]["content_hash"]
            for p in copies
        )
        assert len(engine.texts) == 2 and summary.done == 2 and summary.duplicates == 7
        assert not store.candidates(got[searches[0]]["doc_id"])  # no second model run, no candidates


def test_a_resumed_run_recognises_copies_of_what_it_analysed_before(site, db_path):
    searches = [f"/std/index.html?search={q}" for q in ("vec", "map", "iter")]
    site.extra_pages["/std/index.html"] = page("std", "the Rust standard library", searches + ["/std/vec.html"])
    site.extra_pages["/std/vec.html"] = page("Vec", "growable arrays")
    with Store(db_path) as store:
        with pytest.raises(KeyboardInterrupt):  # killed after the page and its first copy
            run(store, site, "/std/index.html", progress=StopAfter(2), concurrency=1)
        summary, engine = run(store, site, "/std/index.html")
        got = rows(store, summary.run_id, site)
    assert summary.skipped == 2 and summary.duplicates == 2
    assert len(engine.texts) == 1 and "growable arrays" in engine.texts[0]  # not the library page again
    assert {p for p, r in got.items() if r["status"] == "duplicate"} == set(searches)


# -- schema ---------------------------------------------------------------------------------------------
def test_a_database_of_the_previous_schema_gains_the_new_columns(db_path):
    con = duckdb.connect(db_path)
    con.execute("CREATE TABLE schema_version (version INTEGER, applied_at TIMESTAMP)")
    for statement in MIGRATIONS[0]:
        con.execute(statement)
    con.execute("INSERT INTO schema_version VALUES (1, now())")
    con.execute("INSERT INTO runs (run_id, created_at, status) VALUES ('old', now(), 'finished')")
    con.execute("INSERT INTO documents (run_id, uri, status) VALUES ('old', 'https://example.com/', 'done')")
    con.close()
    with Store(db_path) as store:
        assert store.schema_version() == SCHEMA_VERSION >= 2
        cols, got = store.query("SELECT uri, canonical, content_hash, duplicate_of FROM documents")
        assert got == [("https://example.com/", None, None, None)]
