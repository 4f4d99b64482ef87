"""The DataForSEO source against a loopback server that speaks the documented v3 protocol."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "site"))

from sitefixture import FakeDataForSEO  # noqa: E402

from revprompt.core.errors import UserError  # noqa: E402
from revprompt.core.store import Store  # noqa: E402
from revprompt.sources.dataforseo import (  # noqa: E402
    DataForSEOSettings,
    DataForSEOSource,
    Secret,
    content_to_markdown,
)

LOGIN, PASSWORD = "me@example.com", "s3cret-pass"


@pytest.fixture(scope="module")
def api():
    with FakeDataForSEO(LOGIN, PASSWORD) as server:
        yield server


@pytest.fixture
def creds(monkeypatch, api, tmp_path):
    monkeypatch.setenv("REVPROMPT_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("DATAFORSEO_LOGIN", LOGIN)
    monkeypatch.setenv("DATAFORSEO_PASSWORD", PASSWORD)
    monkeypatch.setenv("REVPROMPT_DATAFORSEO_BASE_URL", api.base_url)
    api.requests.clear()
    api.hits.clear()


def load(url: str, source: DataForSEOSource | None = None):
    source = source or DataForSEOSource()
    assert list(source.discover(url, {})) == [url]
    return source.load(url, {})


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
    assert req["body"] == [{"url": "https://example.com/tomatoes", "enable_javascript": False}]
    assert req["auth"] == "Basic " + base64.b64encode(f"{LOGIN}:{PASSWORD}".encode()).decode()


def test_markdown_fallback(creds):
    doc = load("https://example.com/markdown-only")
    assert doc.status == "pending" and doc.text.startswith("# Markdown page")


@pytest.mark.parametrize(
    "url, error",
    [
        ("https://example.com/task-error", "DataForSEO task error 40501: Invalid Field: 'url'"),
        ("https://example.com/server-error", "DataForSEO error 50000: Internal Error"),
        ("https://example.com/page-404", "HTTP 404 (fetched by DataForSEO)"),
    ],
)
def test_errors_fail_one_page_only(creds, api, url, error):
    source = DataForSEOSource()
    doc = load(url, source)
    assert doc.status == "failed" and doc.error == error
    assert load("https://example.com/after", source).status == "pending"  # the source keeps working


def test_auth_failure_fails_every_page_with_one_call_and_no_secret(creds, api, monkeypatch):
    monkeypatch.setenv("DATAFORSEO_PASSWORD", "wrong-" + PASSWORD)
    source = DataForSEOSource()
    first = load("https://example.com/a", source)
    second = source.load("https://example.com/b", {})
    assert first.status == second.status == "failed"
    assert first.error.startswith("DataForSEO error 40100: You are not authorized to access this resource")
    assert "DATAFORSEO_LOGIN" in first.error and second.error == first.error
    assert len(api.requests) == 1  # after 40100 the rest of the batch does not call the API again
    assert PASSWORD not in first.error and "wrong-" not in first.error


def test_payment_required_is_fatal_too(creds, api):
    source = DataForSEOSource()
    assert load("https://example.com/no-funds", source).error == "DataForSEO error 40200: Payment Required"
    assert source.load("https://example.com/fine", {}).error == "DataForSEO error 40200: Payment Required"
    assert len(api.requests) == 1


def test_missing_credentials_is_a_user_error(monkeypatch, tmp_path):
    monkeypatch.setenv("REVPROMPT_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("DATAFORSEO_LOGIN", raising=False)
    monkeypatch.delenv("DATAFORSEO_PASSWORD", raising=False)
    with pytest.raises(UserError, match="no DataForSEO credentials: set DATAFORSEO_LOGIN and DATAFORSEO_PASSWORD"):
        list(DataForSEOSource().discover("https://example.com/", {}))


def test_credentials_and_base_url_from_the_config_file(monkeypatch, tmp_path, api):
    config = tmp_path / "config.toml"
    config.write_text(f'[dataforseo]\nlogin = "{LOGIN}"\npassword = "{PASSWORD}"\nbase_url = "{api.base_url}"\n')
    monkeypatch.setenv("REVPROMPT_CONFIG", str(config))
    for name in ("DATAFORSEO_LOGIN", "DATAFORSEO_PASSWORD", "REVPROMPT_DATAFORSEO_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = DataForSEOSettings.resolve({})
    assert settings.base_url == api.base_url and PASSWORD not in repr(settings)
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
    text, title, facts = content_to_markdown({"main_topic": [
        {"h_title": None, "main_title": "Only text", "level": None, "primary_content": [{"text": " a "}, {"text": ""}]},
        {"h_title": "Deep", "level": 9, "primary_content": None},
    ]})
    assert (text, title, facts) == ("a\n\n###### Deep", "Only text", {})
    assert content_to_markdown(None, "# md") == ("# md", None, {})
    assert content_to_markdown({"main_topic": []}, None) == ("", None, {})


def run_main(main, argv) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return exc.code or 0
    return 0


def test_cli_auth_failure_keeps_the_password_out_of_output_and_database(creds, api, monkeypatch, tmp_path, capsys):
    """`revprompt analyze --source dataforseo` with a wrong password: failed rows, a clear message, no secret."""
    from revprompt.core.cli import main

    bad = "wrong-" + PASSWORD
    monkeypatch.setenv("DATAFORSEO_PASSWORD", bad)
    urls = tmp_path / "urls.txt"
    urls.write_text("https://example.com/a\nhttps://example.com/b\nhttps://example.com/c\n")
    db = str(tmp_path / "dfs.duckdb")
    assert run_main(main, ["analyze", "--source", "dataforseo", "--urls", str(urls), "--db", db, "--no-plugins",
                           "--concurrency", "1", "--model", str(tmp_path / "never-loaded")]) == 0  # failed pages are not a crash
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
    code = run_main(main, ["analyze", "--source", "dataforseo", "https://example.com/single", "--db", db,
                           "--no-plugins", "--model", str(tmp_path / "never-loaded")])
    out = capsys.readouterr()
    assert code == 1 and "40100" in out.err and bad not in out.out + out.err
