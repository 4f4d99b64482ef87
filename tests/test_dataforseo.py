"""The DataForSEO source and --serp against a loopback server that answers in the documented v3 shapes
(see FakeDataForSEO in fixtures/site/sitefixture.py)."""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "site"))

from sitefixture import FakeDataForSEO, SiteServer  # noqa: E402

from revprompt.core.errors import UserError  # noqa: E402
from revprompt.core.store import Store  # noqa: E402
from revprompt.core.types import Candidate, DecodeConfig, SweepResult  # noqa: E402
from revprompt.sources.dataforseo import (  # noqa: E402
    ACCOUNT_OPTION,
    Account,
    DataForSEOSettings,
    DataForSEOSource,
    Secret,
    content_to_markdown,
)

LOGIN, PASSWORD = "me@example.com", "s3cret-pass"
FAST = {"dataforseo_retry_backoff": 0.01}  # retries wait 10 ms, 20 ms, ... instead of seconds


@pytest.fixture(scope="module")
def api():
    with FakeDataForSEO(LOGIN, PASSWORD) as server:
        yield server


@pytest.fixture(scope="module")
def site():
    with SiteServer() as server:
        yield server


@pytest.fixture
def creds(monkeypatch, api, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[dataforseo]\nretry_backoff = 0.01\n")
    monkeypatch.setenv("REVPROMPT_CONFIG", str(config))
    monkeypatch.setenv("DATAFORSEO_LOGIN", LOGIN)
    monkeypatch.setenv("DATAFORSEO_PASSWORD", PASSWORD)
    monkeypatch.setenv("REVPROMPT_DATAFORSEO_BASE_URL", api.base_url)
    api.requests.clear()
    api.hits.clear()
    api.attempts.clear()
    api.serp_items = None
    api.delay = 0.0


def load(url: str, source: DataForSEOSource | None = None, options: dict | None = None):
    source = source or DataForSEOSource()
    options = {**FAST, **(options or {})}
    assert list(source.discover(url, options)) == [url]
    return source.load(url, options)


def content_requests(api):
    return [r for r in api.requests if r["path"] == FakeDataForSEO.CONTENT]


def test_success_builds_markdown_from_main_topic(creds, api):
    doc = load("https://example.com/tomatoes")
    assert doc.status == "pending" and doc.error is None and doc.source == "dataforseo"
    assert doc.title == "Tomatoes | Example"
    assert doc.text.startswith("# Guide to tomatoes\n\nThis page explains tomatoes in plain words")
    assert "## Common mistakes\n\nOverwatering drowns roots" in doc.text
    assert "Related: composting basics" not in doc.text and "Footer" not in doc.text  # main content only
    assert doc.http_status == 200 and doc.meta["language"] == "en"
    assert doc.meta["dataforseo"]["task_id"] == "01011234-1234-0216-0000-abcdef012345"
    (req,) = api.requests
    assert req["path"] == "/v3/on_page/content_parsing/live"
    assert req["body"] == [{"url": "https://example.com/tomatoes", "markdown_view": True, "enable_javascript": False}]
    assert req["auth"] == "Basic " + base64.b64encode(f"{LOGIN}:{PASSWORD}".encode()).decode()


def test_page_as_markdown_comes_because_markdown_view_is_sent(creds, api):
    doc = load("https://example.com/markdown-only")
    assert api.requests[0]["body"][0]["markdown_view"] is True
    assert doc.status == "pending" and doc.text.startswith("# Markdown page")


def test_an_error_page_is_a_failed_row_not_content(creds, api):
    """The page's status is on items[].status_code; the 404 page's own text must not be analysed."""
    doc = load("https://example.com/page-404")
    assert doc.status == "failed" and doc.error == "HTTP 404 (fetched by DataForSEO)"
    assert doc.http_status == 404 and not doc.text


def test_broken_item_says_what_to_try_and_the_options_fix_it(creds, api):
    doc = load("https://example.com/broken-site")
    assert doc.status == "failed" and doc.http_status == 403
    assert doc.error.startswith("DataForSEO could not load the page (HTTP 403, broken)")
    assert "--dataforseo-js" in doc.error and "--dataforseo-language" in doc.error and "no text" not in doc.error

    js = load("https://example.com/broken-site", options={"_dataforseo_javascript": True})
    assert js.status == "pending" and api.requests[-1]["body"][0]["enable_javascript"] is True
    lang = load(
        "https://example.com/broken-site",
        options={"_dataforseo_accept_language": "de-DE", "_dataforseo_user_agent": "MyBot/1.0"},
    )
    assert lang.status == "pending"
    assert api.requests[-1]["body"] == [
        {
            "url": "https://example.com/broken-site",
            "markdown_view": True,
            "enable_javascript": False,
            "accept_language": "de-DE",
            "custom_user_agent": "MyBot/1.0",
        }
    ]


@pytest.mark.parametrize("url, calls", [("https://example.com/rate-limited", 2), ("https://example.com/resubmit", 2)])
def test_transient_codes_are_retried(creds, api, url, calls):
    doc = load(url)
    assert doc.status == "pending" and doc.error is None
    assert len(content_requests(api)) == calls


def test_a_server_error_that_persists_fails_one_page_after_the_retries(creds, api):
    source = DataForSEOSource()
    doc = load("https://example.com/server-error", source, {"dataforseo_retries": 2})
    assert doc.status == "failed" and doc.error == "DataForSEO error 50000: Internal Error (after 3 attempts)"
    assert len(api.requests) == 3
    assert load("https://example.com/after", source).status == "pending"  # the source keeps working


def test_task_error_fails_one_page_without_retry(creds, api):
    source = DataForSEOSource()
    doc = load("https://example.com/task-error", source)
    assert doc.error == "DataForSEO task error 40501: Invalid Field: 'url'" and len(api.requests) == 1
    assert load("https://example.com/after", source).status == "pending"


def test_auth_failure_fails_every_page_with_one_call_and_no_secret(creds, api, monkeypatch):
    monkeypatch.setenv("DATAFORSEO_PASSWORD", "wrong-" + PASSWORD)
    source = DataForSEOSource()
    first = load("https://example.com/a", source)
    second = source.load("https://example.com/b", FAST)
    assert first.status == second.status == "failed"
    assert first.error.startswith("DataForSEO error 40100: You are not authorized to access this resource")
    assert "DATAFORSEO_LOGIN" in first.error and second.error == first.error
    assert len(api.requests) == 1  # after 40100 the rest of the batch does not call the API again
    assert PASSWORD not in first.error and "wrong-" not in first.error


def test_an_account_error_stops_a_retry_waiting_in_another_thread(creds, api):
    """No new call starts after an account error, not even a retry already scheduled elsewhere."""
    source = DataForSEOSource()
    options = {"dataforseo_retry_backoff": 30, "dataforseo_retries": 3}
    source.discover("https://example.com/x", options)
    waiting: dict = {}
    worker = threading.Thread(
        target=lambda: waiting.update(doc=source.load("https://example.com/server-error", options))
    )
    start = time.monotonic()
    worker.start()
    while not content_requests(api):
        time.sleep(0.01)
    time.sleep(0.1)  # the worker is now waiting 30 s before its retry
    assert source.load("https://example.com/no-funds", options).error == "DataForSEO error 40200: Payment Required"
    worker.join(5)
    assert not worker.is_alive() and time.monotonic() - start < 5
    assert waiting["doc"].error == "DataForSEO error 40200: Payment Required"
    assert source.load("https://example.com/later", options).error == "DataForSEO error 40200: Payment Required"
    assert len(api.requests) == 2


def test_cost_is_the_sum_of_task_costs(creds, api):
    source = DataForSEOSource()
    options = {**FAST, ACCOUNT_OPTION: Account()}
    for url in ("https://example.com/one", "https://example.com/two", "https://example.com/task-error"):
        source.discover(url, options)
        source.load(url, options)
    account = options[ACCOUNT_OPTION]
    assert account.calls == 3 and account.cost == pytest.approx(2 * FakeDataForSEO.PAGE_COST)


def test_missing_credentials_is_a_user_error(monkeypatch, tmp_path):
    monkeypatch.setenv("REVPROMPT_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("DATAFORSEO_LOGIN", raising=False)
    monkeypatch.delenv("DATAFORSEO_PASSWORD", raising=False)
    with pytest.raises(UserError, match="no DataForSEO credentials: set DATAFORSEO_LOGIN and DATAFORSEO_PASSWORD"):
        list(DataForSEOSource().discover("https://example.com/", {}))


def test_credentials_and_base_url_from_the_config_file(monkeypatch, tmp_path, api):
    config = tmp_path / "config.toml"
    config.write_text(
        f'[dataforseo]\nlogin = "{LOGIN}"\npassword = "{PASSWORD}"\nbase_url = "{api.base_url}"\n'
        'accept_language = "fr-FR"\n'
    )
    monkeypatch.setenv("REVPROMPT_CONFIG", str(config))
    for name in ("DATAFORSEO_LOGIN", "DATAFORSEO_PASSWORD", "REVPROMPT_DATAFORSEO_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = DataForSEOSettings.resolve({})
    assert settings.base_url == api.base_url and PASSWORD not in repr(settings)
    assert settings.accept_language == "fr-FR"
    assert load("https://example.com/config").status == "pending"
    config.write_text('[dataforseo]\npassword = "unterminated\n')
    with pytest.raises(UserError) as exc:
        DataForSEOSettings.resolve({})
    assert "unterminated" not in str(exc.value) and "fix its TOML syntax" in str(exc.value)


def test_url_list_file_target(creds, tmp_path):
    f = tmp_path / "urls.txt"
    f.write_text("# pages\nhttps://example.com/one\nnot a url\n")
    items = DataForSEOSource().discover(str(f), {})
    assert items[0] == "https://example.com/one" and items[1].error == "not an http(s) URL"
    with pytest.raises(UserError, match="needs a URL or a file of URLs"):
        DataForSEOSource().discover("just words", {})


def test_redaction_and_secret():
    settings = DataForSEOSettings(login=LOGIN, password=Secret(PASSWORD))
    token = base64.b64encode(f"{LOGIN}:{PASSWORD}".encode()).decode()
    assert settings.redact(f"bad {PASSWORD} and Basic {token}") == "bad *** and Basic ***"
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings.password)


def test_content_to_markdown_edge_cases():
    text, title, facts = content_to_markdown(
        {
            "main_topic": [
                {
                    "h_title": None,
                    "main_title": "Only text",
                    "level": None,
                    "primary_content": [{"text": " a "}, {"text": ""}],
                },
                {"h_title": "Deep", "level": 9, "primary_content": None},
            ]
        }
    )
    assert (text, title, facts) == ("a\n\n###### Deep", "Only text", {})
    assert content_to_markdown(None, "# md") == ("# md", None, {})
    assert content_to_markdown({"main_topic": []}, None) == ("", None, {})


# -- through the command ------------------------------------------------------------------------------------


class QuickEngine:
    def sweep(self, text: str, kind: str = "response") -> SweepResult:
        cand = Candidate(
            prompt="Describe the garden",
            token_ids=[5],
            tokens=["x"],
            token_probs=[0.9],
            perplexity=1.5,
            mean_nll=0.4,
            configs=[DecodeConfig(4, 0.2)],
            rank=1,
        )
        return SweepResult([cand], n_input_tokens=len(text.split()), truncated=False)


@pytest.fixture
def quick_engine(monkeypatch):
    from revprompt.core.engine import Engine

    monkeypatch.setattr(Engine, "load", classmethod(lambda cls, *a, **k: QuickEngine()))


def run_main(argv) -> int:
    from revprompt.core.cli import main

    try:
        main(argv)
    except SystemExit as exc:
        return exc.code or 0
    return 0


def run_config(db) -> dict:
    with Store(db, read_only=True) as store:
        _, rows = store.query("SELECT config FROM runs ORDER BY created_at")
    return [json.loads(r[0]) for r in rows]


def test_cli_auth_failure_keeps_the_password_out_of_output_and_database(creds, api, monkeypatch, tmp_path, capsys):
    """`revprompt analyze --source dataforseo` with a wrong password: failed rows, a clear message, no secret."""
    bad = "wrong-" + PASSWORD
    monkeypatch.setenv("DATAFORSEO_PASSWORD", bad)
    urls = tmp_path / "urls.txt"
    urls.write_text("https://example.com/a\nhttps://example.com/b\nhttps://example.com/c\n")
    db = str(tmp_path / "dfs.duckdb")
    assert (
        run_main(
            [
                "analyze",
                "--source",
                "dataforseo",
                "--urls",
                str(urls),
                "--db",
                db,
                "--no-plugins",
                "--concurrency",
                "1",
                "--model",
                str(tmp_path / "never-loaded"),
            ]
        )
        == 1
    )  # every page failed: exit 1
    out = capsys.readouterr()
    assert "40100" in out.out + out.err and "Traceback" not in out.err
    assert bad not in out.out + out.err and PASSWORD not in out.out + out.err
    with Store(db, read_only=True) as store:
        _, rows = store.query("SELECT * FROM documents")
        _, runs = store.query("SELECT * FROM runs")
    assert len(rows) == 3 and all("40100" in str(r) for r in rows)
    dump = json.dumps([list(map(str, r)) for r in rows + runs])
    assert bad not in dump and PASSWORD not in dump
    assert len(api.requests) == 1

    # One page: the failure is the command's error (exit 1), still without the secret.
    code = run_main(
        [
            "analyze",
            "--source",
            "dataforseo",
            "https://example.com/single",
            "--db",
            db,
            "--no-plugins",
            "--model",
            str(tmp_path / "never-loaded"),
        ]
    )
    out = capsys.readouterr()
    assert code == 1 and "40100" in out.err and bad not in out.out + out.err


def test_cli_shows_the_cost_and_stores_it_on_the_run(creds, api, tmp_path, capsys, quick_engine):
    urls = tmp_path / "urls.txt"
    urls.write_text("https://example.com/a\nhttps://example.com/page-404\nhttps://example.com/broken-b\n")
    db = str(tmp_path / "cost.duckdb")
    argv = ["analyze", "--source", "dataforseo", "--urls", str(urls), "--db", db, "--no-plugins", "--concurrency", "1"]
    assert run_main(argv) == 0
    err = capsys.readouterr().err
    assert "DataForSEO: 3 calls, $0.00375" in err
    assert run_config(db)[0]["cost_usd"] == {"dataforseo": pytest.approx(3 * FakeDataForSEO.PAGE_COST)}

    # The broken page again, with JavaScript on: the same run is resumed (only the failures are fetched),
    # and its cost adds up.
    assert run_main(argv + ["--retry-failed", "--dataforseo-js"]) == 0
    err = capsys.readouterr().err
    assert "DataForSEO: 2 calls, $0.0025 (run total $0.00625)" in err
    (config,) = run_config(db)
    assert config["cost_usd"]["dataforseo"] == pytest.approx(5 * FakeDataForSEO.PAGE_COST)
    with Store(db, read_only=True) as store:
        _, rows = store.query("SELECT uri, status FROM documents ORDER BY uri")
    assert dict(rows) == {
        "https://example.com/a": "done",
        "https://example.com/broken-b": "done",
        "https://example.com/page-404": "failed",
    }
    assert content_requests(api)[-1]["body"][0]["enable_javascript"] is True


def test_cli_estimate_calls_nothing(creds, api, tmp_path, capsys):
    urls = tmp_path / "urls.txt"
    urls.write_text("https://example.com/a\nhttps://example.com/b\nhttps://example.com/a\nnot a url\n")
    db = str(tmp_path / "est.duckdb")
    assert run_main(["analyze", "--source", "dataforseo", "--urls", str(urls), "--db", db, "--estimate"]) == 0
    err = capsys.readouterr().err
    assert "up to 2 content-parsing calls" in err and "page_price" in err
    assert run_main(["analyze", "--serp", "garden tools", "--depth", "20", "--db", db, "--estimate"]) == 0
    err = capsys.readouterr().err
    assert "SERP: 1 call, depth 20: about $0.0035" in err and "fetched by revprompt (free)" in err
    assert api.requests == [] and not Path(db).exists()
    assert run_main(["analyze", "some text", "--estimate", "--db", db]) == 2


def test_cli_serp_analyses_the_organic_results_fetched_by_revprompt(creds, api, site, tmp_path, capsys, quick_engine):
    first, second = site.url("/about"), site.url("/blog/first-post")
    api.serp_items = [
        {"type": "paid", "rank_group": 1, "rank_absolute": 1, "url": site.url("/blog/second-post")},
        {"type": "organic", "rank_group": 1, "rank_absolute": 2, "domain": "127.0.0.1", "title": "About", "url": first},
        {"type": "people_also_ask", "rank_group": 1, "rank_absolute": 3, "items": []},
        {"type": "organic", "rank_group": 2, "rank_absolute": 4, "domain": "127.0.0.1", "title": "Post", "url": second},
        {"type": "organic", "rank_group": 3, "rank_absolute": 5, "domain": "127.0.0.1", "title": "Again", "url": first},
    ]
    db = str(tmp_path / "serp.duckdb")
    assert (
        run_main(
            [
                "analyze",
                "--serp",
                "garden blog",
                "--location",
                "United Kingdom",
                "--language",
                "en",
                "--depth",
                "10",
                "--db",
                db,
                "--no-plugins",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    (req,) = api.requests
    assert req["path"] == "/v3/serp/google/organic/live/advanced"
    assert req["body"] == [
        {"keyword": "garden blog", "depth": 10, "location_name": "United Kingdom", "language_code": "en"}
    ]
    with Store(db, read_only=True) as store:
        docs = {d["uri"]: d for d in store.documents()}
    assert set(docs) == {first, second}  # organic only, each page once; paid and other features left out
    assert all(d["status"] == "done" and d["source"] == "url" for d in docs.values())
    meta = docs[second]["meta"]
    meta = json.loads(meta) if isinstance(meta, str) else meta
    assert meta["serp"] == {
        "keyword": "garden blog",
        "rank": 2,
        "rank_absolute": 4,
        "title": "Post",
        "domain": "127.0.0.1",
    }
    assert "DataForSEO: 1 call, $0.002" in err
    assert run_config(db)[0]["cost_usd"] == {"dataforseo": pytest.approx(FakeDataForSEO.SERP_COST)}


def test_cli_serp_through_dataforseo(creds, api, tmp_path, capsys, quick_engine):
    db = str(tmp_path / "serp-dfs.duckdb")
    assert (
        run_main(
            [
                "analyze",
                "--serp",
                "tomatoes",
                "--source",
                "dataforseo",
                "--db",
                db,
                "--no-plugins",
                "--concurrency",
                "1",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert [r["path"] for r in api.requests] == ["/v3/serp/google/organic/live/advanced"] + [FakeDataForSEO.CONTENT] * 2
    assert api.requests[0]["body"][0]["location_name"] == "United States"
    assert {r["body"][0]["url"] for r in content_requests(api)} == {
        "https://example.com/first",
        "https://example.com/second",
    }
    assert "DataForSEO: 3 calls, $0.0045" in err


def test_cli_serp_errors_are_one_line(creds, api, monkeypatch, tmp_path, capsys):
    api.serp_items = [{"type": "paid", "rank_group": 1, "rank_absolute": 1, "url": "https://ads.example/"}]
    db = str(tmp_path / "serp-none.duckdb")
    assert run_main(["analyze", "--serp", "nothing ranks", "--db", db]) == 1
    assert "SERP for 'nothing ranks': no organic results (United States, en)" in capsys.readouterr().err
    monkeypatch.setenv("DATAFORSEO_PASSWORD", "wrong-" + PASSWORD)
    assert run_main(["analyze", "--serp", "x", "--db", db]) == 1
    err = capsys.readouterr().err
    assert "SERP for 'x': DataForSEO error 40100" in err and "wrong-" not in err and "Traceback" not in err
    assert run_main(["analyze", "--serp", "x", "https://example.com/", "--db", db]) == 2
    assert run_main(["analyze", "--depth", "5", "https://example.com/", "--db", db]) == 2
