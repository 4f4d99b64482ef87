"""BatchRunner over the loopback site: one row per target, failures as rows, resume without refetch or duplicates.

A stub engine stands in for the model here (the runner's job is plumbing); tests/test_site_cli.py runs the real
CLI with a tiny model, kill -9 included.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "site"))

from sitefixture import FAULTS, GOOD_PAGES, SiteServer  # noqa: E402

from revprompt.core.batch import BatchRunner, target_key  # noqa: E402
from revprompt.core.errors import UserError  # noqa: E402
from revprompt.core.progress import BatchProgress  # noqa: E402
from revprompt.core.store import Store  # noqa: E402
from revprompt.core.types import Candidate, DecodeConfig, Document, SweepResult  # noqa: E402

OPTIONS = {"timeout": 0.5, "retries": 0, "crawl_delay": 0, "max_depth": 3, "max_pages": None, "retry_failed": False}

FAULT_ERRORS = {
    "/slow": "timed out after 0.5s waiting for the server",
    "/missing": "HTTP 404",
    "/error": "HTTP 500",
    "/loop": "too many redirects (more than 5)",
    "/image": "not a text/HTML page (image/png)",
    "/huge": "page larger than 5 MB",
    "/empty": "no text found on the page",
}


class StubEngine:
    """Sweeps instantly; `fail_on` makes texts containing it raise, like a model bug would."""

    def __init__(self, fail_on: str | None = None):
        self.fail_on = fail_on
        self.texts: list[str] = []

    def sweep(self, text: str, kind: str = "response") -> SweepResult:
        self.texts.append(text)
        if self.fail_on and self.fail_on in text:
            raise RuntimeError("the stub model broke")
        cand = Candidate(
            prompt="Write about " + " ".join(text.split()[:3]),
            token_ids=[10, 11],
            tokens=["a", "b"],
            token_probs=[0.5, 0.5],
            perplexity=2.0,
            mean_nll=0.69,
            configs=[DecodeConfig(2, 0.1)],
            rank=1,
        )
        return SweepResult([cand], n_input_tokens=len(text.split()), truncated=False)


class StopAfter:
    """A progress object that interrupts the run after `n` stored documents, like Ctrl-C would."""

    def __init__(self, n: int):
        self.n = n
        self.seen = 0
        self.skipped = 0

    def start(self, total, skipped=0, estimated=False):
        self.total = total

    def skip(self, uri=None):
        self.skipped += 1

    def advance(self, doc):
        self.seen += 1
        if self.seen >= self.n:
            raise KeyboardInterrupt

    def finish(self):
        pass


@pytest.fixture(scope="module")
def site():
    with SiteServer(slow_seconds=2.0) as server:
        yield server


def runner(store, engine=None, progress=None, **options):
    engine = engine or StubEngine()
    return BatchRunner(
        store, lambda: engine, {"model": "stub"}, analyzers=[], options={**OPTIONS, **options}, progress=progress
    )


def url_file(tmp_path, site, paths, extra: str = "") -> str:
    f = tmp_path / "urls.txt"
    f.write_text("# the test site\n" + "\n".join(site.url(p) for p in paths) + "\n" + extra)
    return str(f)


def by_path(store, run_id, site) -> dict[str, dict]:
    docs = store.documents(run_id)
    uris = [d["uri"] for d in docs]
    assert len(uris) == len(set(uris)), "a document was stored twice"
    return {d["uri"].replace(site.base_url, ""): d for d in docs}


def test_url_list_with_faults_gives_one_row_per_url(tmp_path, site, db_path):
    paths = GOOD_PAGES + FAULTS + ["/private/secret"]
    targets = url_file(tmp_path, site, paths, extra=f"{site.url('/about')}\nnot-a-url\n")
    with Store(db_path) as store:
        summary = runner(store).run("analyze --urls", [targets], "urls")
        rows = by_path(store, summary.run_id, site)
        run = store.get_run(summary.run_id)
    assert set(rows) == set(paths) | {"not-a-url"}
    copies = {"/latin1-meta": "/latin1", "/redirect": "/about"}  # the same text as a page listed before them
    for path in GOOD_PAGES + ["/private/secret"]:  # a URL list is what the user asked for: no robots.txt check
        if path in copies:  # stored, not analysed a second time
            first = rows[copies[path]]
            assert (rows[path]["status"], rows[path]["duplicate_of"]) == ("duplicate", first["uri"]), path
            assert rows[path]["content_hash"] == first["content_hash"] and rows[path]["analyzed_at"] is None
            continue
        assert rows[path]["status"] == "done", (path, rows[path]["error"])
        assert rows[path]["text"] and rows[path]["analyzed_at"] is not None and rows[path]["duplicate_of"] is None
    for path, error in FAULT_ERRORS.items():
        assert (rows[path]["status"], rows[path]["error"]) == ("failed", error)
    assert rows["not-a-url"]["error"] == "not an http(s) URL"
    assert rows["/about"]["title"] == "About the garden"
    assert rows["/about"]["description"] == "Who runs Loopback Gardens and how to join."
    assert rows["/missing"]["http_status"] == 404 and rows["/image"]["content_type"] == "image/png"
    assert summary.done == len(GOOD_PAGES) + 1 - 2 and summary.duplicates == 2
    assert summary.failed == len(FAULTS) + 1
    assert run.status == "finished"


def test_interrupted_run_resumes_without_refetching_or_duplicates(tmp_path, site, db_path):
    paths = ["/", "/about", "/missing", "/blog/", "/blog/first-post", "/blog/second-post", "/notes.txt"]
    targets = url_file(tmp_path, site, paths)
    site.hits.clear()
    with Store(db_path) as store:
        with pytest.raises(KeyboardInterrupt):
            runner(store, progress=StopAfter(3), concurrency=1).run("analyze --urls", [targets], "urls")
        ((run_id, status),) = store.query("SELECT run_id, status FROM runs")[1]
        assert status == "interrupted" and len(store.documents(run_id)) == 3
        first = {d["uri"] for d in store.documents(run_id)}
        progress = StopAfter(10**6)
        summary = runner(store, progress=progress).run("analyze --urls", [targets], "urls")
        assert summary.run_id == run_id and summary.resumed
        assert summary.skipped == 3 and progress.skipped == 3
        rows = by_path(store, run_id, site)
        assert set(rows) == set(paths)
        assert store.get_run(run_id).status == "finished"
        assert len(store.query("SELECT * FROM runs")[1]) == 1
    for uri in first:  # stored before the interruption: never fetched again
        assert site.hits[uri.replace(site.base_url, "")] == 1


def test_sitemap_index_batch(site, db_path):
    with Store(db_path) as store:
        summary = runner(store).run("analyze sitemap", [site.url("/sitemap_index.xml")])
        rows = by_path(store, summary.run_id, site)
    assert set(rows) == set(GOOD_PAGES + FAULTS) | {"/sitemaps/missing.xml"}
    assert rows["/sitemaps/missing.xml"]["error"] == "sitemap: HTTP 404"
    assert rows["/sitemaps/missing.xml"]["source"] == "sitemap"
    assert rows["/blog/first-post"]["status"] == "done" and rows["/blog/first-post"]["source"] == "sitemap"
    assert {p for p, r in rows.items() if r["status"] == "failed"} == set(FAULTS) | {"/sitemaps/missing.xml"}


def test_crawl_batch_interrupted_and_resumed(site, db_path):
    site.hits.clear()
    with Store(db_path) as store:
        with pytest.raises(KeyboardInterrupt):
            runner(store, progress=StopAfter(4), concurrency=1).run("analyze --crawl", [site.url("/")], "crawl")
        ((run_id,),) = store.query("SELECT run_id FROM runs")[1]
        before = {d["uri"] for d in store.documents(run_id)}
        assert len(before) == 4
        hits_before = dict(site.hits)
        summary = runner(store).run("analyze --crawl", [site.url("/")], "crawl")
        assert summary.run_id == run_id and summary.skipped == 4
        rows = by_path(store, run_id, site)
    assert set(rows) == {
        "/",
        "/about",
        "/blog/",
        "/blog/first-post",
        "/blog/second-post",
        "/blog/archive/old-notes",
        "/private/secret",
        "/missing",
        "/image",
    }
    assert rows["/private/secret"]["error"] == "disallowed by robots.txt"
    for uri in before:  # stored pages are not fetched again: their stored links lead the crawl on
        path = uri.replace(site.base_url, "")
        assert site.hits[path] == hits_before.get(path, 0), path


def test_rerun_after_finish_starts_fresh_but_retry_failed_reuses_the_run(tmp_path, site, db_path):
    targets = url_file(tmp_path, site, ["/about", "/later"])
    with Store(db_path) as store:
        first = runner(store).run("analyze --urls", [targets], "urls")
        assert by_path(store, first.run_id, site)["/later"]["error"] == "HTTP 404"
        site.extra_pages["/later"] = "<html><body><p>This page exists now and has text to analyse.</p></body></html>"
        try:
            retry = runner(store, retry_failed=True).run("analyze --urls --retry-failed", [targets], "urls")
        finally:
            del site.extra_pages["/later"]
        assert retry.run_id == first.run_id and retry.skipped == 1 and retry.done == 1
        rows = by_path(store, first.run_id, site)
        assert rows["/later"]["status"] == "done" and rows["/later"]["error"] is None
        fresh = runner(store).run("analyze --urls", [targets], "urls")
        assert fresh.run_id != first.run_id and not fresh.resumed


def test_analysis_failure_is_a_row_and_the_batch_goes_on(tmp_path, site, db_path):
    targets = url_file(tmp_path, site, ["/about", "/blog/first-post", "/notes.txt"])
    with Store(db_path) as store:
        summary = runner(store, engine=StubEngine(fail_on="seedlings")).run("analyze --urls", [targets], "urls")
        rows = by_path(store, summary.run_id, site)
    assert rows["/blog/first-post"]["status"] == "failed"
    assert rows["/blog/first-post"]["error"] == "analysis failed: RuntimeError: the stub model broke"
    assert rows["/about"]["status"] == rows["/notes.txt"]["status"] == "done"


class BrokenSource:
    name = "broken"
    description = "raises"
    concurrent_loads = True

    def __init__(self, streaming=False):
        self.streaming = streaming

    def claims(self, target, options):
        return True

    def discover(self, target, options):
        if self.streaming:
            yield Document(uri="a", text="some text", source=self.name)
            raise ValueError("the crawler fell over")
        yield from ["ok-1", "bad", "ok-2"]

    def load(self, uri, options):
        if uri == "bad":
            raise KeyError("no such thing")
        return Document(uri=uri, text=f"text of {uri}", source=self.name)


def test_a_source_bug_costs_one_row(monkeypatch, db_path):
    monkeypatch.setattr("revprompt.core.batch.pick_source", lambda *a, **k: BrokenSource())
    with Store(db_path) as store:
        summary = runner(store).run("analyze x", ["x"])
        docs = {d["uri"]: d for d in store.documents(summary.run_id)}
    assert [docs[u]["status"] for u in ("ok-1", "bad", "ok-2")] == ["done", "failed", "done"]
    assert docs["bad"]["error"] == "KeyError: 'no such thing'"


def test_a_crashing_streaming_source_stops_with_a_message(monkeypatch, db_path):
    monkeypatch.setattr("revprompt.core.batch.pick_source", lambda *a, **k: BrokenSource(streaming=True))
    with Store(db_path) as store:
        with pytest.raises(UserError, match="broken source stopped on x: ValueError: the crawler fell over"):
            runner(store).run("analyze x", ["x"])
        assert [d["uri"] for d in store.documents()] == ["a"]  # what was done is kept


def test_target_key_ignores_fetch_tuning():
    base = target_key(["u"], "urls", {"model": "m"}, {"max_pages": 5, "timeout": 1})
    assert base == target_key(
        ["u"],
        "urls",
        {"model": "m"},
        {"max_pages": 5, "timeout": 9, "concurrency": 2, "crawl_delay": 3, "retry_failed": True},
    )
    assert base != target_key(["u"], "urls", {"model": "m"}, {"max_pages": 6, "timeout": 1})


def test_plain_progress_lines():
    out = io.StringIO()
    progress = BatchProgress(stream=out)  # not a terminal: one line per document
    progress.start(3)
    progress.skip("x")
    progress.advance(Document(uri="https://a.test/1", status="done"))
    progress.advance(Document(uri="https://a.test/2").failed("HTTP 404"))
    progress.finish()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("revprompt: [1/3] done https://a.test/1  (1 done, 0 failed, 1 already done, ")
    assert "docs/min" in lines[0] and "eta " in lines[0]
    assert lines[1].startswith("revprompt: [2/3] failed https://a.test/2: HTTP 404  (1 done, 1 failed")
    single = io.StringIO()
    one = BatchProgress(stream=single)
    one.start(1)
    one.advance(Document(uri="text:1", status="done"))
    assert single.getvalue() == ""  # a single text prints no progress lines


def test_resume_by_run_id(tmp_path, site, db_path):
    targets = url_file(tmp_path, site, ["/about", "/blog/", "/notes.txt"])
    with Store(db_path) as store:
        with pytest.raises(UserError, match="no run nope"):
            runner(store).run("analyze --urls", [targets], "urls", resume_run_id="nope")
        with pytest.raises(KeyboardInterrupt):
            runner(store, progress=StopAfter(1), concurrency=1).run("analyze --urls", [targets], "urls")
        ((run_id,),) = store.query("SELECT run_id FROM runs")[1]
        # Named explicitly, a run resumes even where the options differ (here: another target key).
        summary = runner(store, max_pages=50).run("analyze --urls", [targets], "urls", resume_run_id=run_id)
        assert summary.run_id == run_id and summary.skipped == 1 and summary.done == 2
        assert len(by_path(store, run_id, site)) == 3


def test_terminal_progress_bar():
    out = io.StringIO()
    progress = BatchProgress(stream=out, plain=False)  # the rich bar, as on a terminal
    progress.start(100, estimated=True)
    progress.skip("x")
    progress.advance(Document(uri="https://a.test/1", status="done"))
    progress.advance(Document(uri="https://a.test/2").failed("HTTP 500"))
    progress.finish()
    text = out.getvalue()
    assert "1 done" in text and "1 failed" in text and "1 already done" in text
    assert "2/2" in text  # an estimated total ends at what was actually done
