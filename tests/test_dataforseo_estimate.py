"""`analyze --estimate` for DataForSEO pages: a dollar figure from DataForSEO's documented per-page price, with
where that price comes from; `page_price` in the config overrides it. Nothing is called (the loopback API
records every request)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_dataforseo import api, creds, run_main  # noqa: E402,F401  (fixtures: the loopback API, credentials)

from revprompt.sources.dataforseo import PAGE_PRICE, PAGE_PRICE_JS  # noqa: E402


def urls_file(tmp_path, n: int) -> str:
    f = tmp_path / "urls.txt"
    f.write_text("".join(f"https://example.com/p{i}\n" for i in range(n)) + "https://example.com/p0\n# note\n")
    return str(f)


def estimate(capsys, *argv) -> str:
    capsys.readouterr()
    assert run_main(["analyze", *argv, "--estimate"]) == 0
    return capsys.readouterr().err


def test_documented_prices():
    # dataforseo.com/pricing/on-page/onpage-api: $0.000125 per crawled page; enable_javascript = basic + 9 x basic
    assert PAGE_PRICE == 0.000125 and PAGE_PRICE_JS == pytest.approx(10 * PAGE_PRICE)


def test_estimate_prints_the_list_price_and_its_source(creds, api, tmp_path, capsys):
    db = str(tmp_path / "est.duckdb")
    err = estimate(capsys, "--source", "dataforseo", "--urls", urls_file(tmp_path, 8), "--db", db)
    assert (
        "pages: up to 8 content-parsing calls x $0.000125 a page = about $0.001 (DataForSEO's On-Page API "
        "list price, dataforseo.com/pricing/on-page/onpage-api; set page_price under [dataforseo]"
    ) in err
    err = estimate(capsys, "--source", "dataforseo", "--urls", urls_file(tmp_path, 8), "--db", db, "--dataforseo-js")
    assert "up to 8 content-parsing calls x $0.00125 a page = about $0.01 (" in err
    assert "JavaScript on: basic + 9 x basic" in err
    # --serp with pages fetched by DataForSEO: the SERP call plus one content-parsing call per result
    err = estimate(capsys, "--serp", "garden tools", "--depth", "10", "--source", "dataforseo", "--db", db)
    assert "SERP: 1 call, depth 10: about $0.002" in err
    assert "pages: up to 10 content-parsing calls x $0.000125 a page = about $0.00125" in err
    assert api.requests == [] and not Path(db).exists()


def test_page_price_in_the_config_wins_and_is_named(creds, api, tmp_path, capsys, monkeypatch):
    config = tmp_path / "priced.toml"
    config.write_text("[dataforseo]\npage_price = 0.0002\n")
    monkeypatch.setenv("REVPROMPT_CONFIG", str(config))
    err = estimate(capsys, "--source", "dataforseo", "--urls", urls_file(tmp_path, 5), "--db", str(tmp_path / "e.db"))
    assert f"up to 5 content-parsing calls x $0.0002 a page = about $0.001 (page_price in {config})" in err
    assert api.requests == []
