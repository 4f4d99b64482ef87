"""`revprompt report`: one self-contained HTML file per run, checked as HTML here and in headless Chromium.

The database is built in the test from the tiny random-weight model (real tokenizer, real sweep), with the
built-in analyzers (the site intent one on a hashed bag-of-words embedding, so MiniLM is never loaded), a failed
page, a second run, and rows in `keyword_matches` (the table `revprompt match` fills).
"""

from __future__ import annotations

import hashlib
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from conftest import cli_runner

from revprompt.core.store import Store, open_sandbox
from revprompt.core.types import Document
from revprompt.plugins.key_phrases import KeyPhrasesAnalyzer
from revprompt.plugins.report import collect, render
from revprompt.plugins.site_intent import SiteIntentAnalyzer
from revprompt.plugins.testing import make_result, run_batch
from revprompt.plugins.word_frequency import WordFrequencyAnalyzer

XSS_TITLE = '<script>alert("x")</script> Taps & "Leaks"'
PAGES = [
    (
        "https://example.com/taps",
        XSS_TITLE,
        "To fix a leaking kitchen tap, turn off the water supply, remove the handle and replace the worn washer.",
    ),
    (
        "https://example.com/orchids",
        "Repotting orchids",
        "Repot an orchid every two years in spring, using bark mix and a pot with drainage holes.",
    ),
    (
        "https://example.com/shoes",
        "Running shoes",
        "For flat feet choose stability running shoes with firm midsoles and good arch support.",
    ),
    (
        "https://example.com/rome",
        "Flights to Rome",
        "Cheap flights to Rome in May are easiest to find by booking six weeks ahead and flying midweek.",
    ),
]


def bag_of_words(texts):
    """A deterministic stand-in for MiniLM: hashed bag of words, normalised."""
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


@pytest.fixture(scope="module")
def report_db(tmp_path_factory, tiny_engine):
    """(db path, first run id, second (latest) run id)."""
    db = str(tmp_path_factory.mktemp("report") / "report.duckdb")
    items = [
        (Document(uri, text, title=title, source="url", status="done"), tiny_engine.sweep(text))
        for uri, title, text in PAGES
    ]
    items.append(
        (
            Document(
                "https://example.com/broken", "", title="Broken", source="url", error="HTTP 500 Internal Server Error"
            ),
            None,
        )
    )
    analyzers = [KeyPhrasesAnalyzer(), WordFrequencyAnalyzer(), SiteIntentAnalyzer(embed=bag_of_words)]
    with Store(db) as store:
        first = run_batch(store, items, analyzers, command="analyze --urls pages.txt")
        docs = {d["uri"]: d["doc_id"] for d in store.documents(first)}  # keyword_matches: store migration 3
        store.execute(
            "INSERT INTO keyword_matches (run_id, keyword, doc_id, rank, nll, cosine) "
            "VALUES (?, 'fix leaking tap', ?, 1, 1.25, 0.81), (?, 'fix leaking tap', ?, 2, 3.5, 0.22)",
            [first, docs["https://example.com/taps"], first, docs["https://example.com/orchids"]],
        )
        second = run_batch(
            store,
            [(Document("second.txt", "just one page"), make_result(["one page?"]))],
            [KeyPhrasesAnalyzer()],
            command="analyze second.txt",
        )
    return db, first, second


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href", "action", "data", "poster", "srcset", "xlink:href") and value:
                self.urls.append(value)
            if name == "id":
                self.ids.add(value)


def _without_data(text: str) -> str:
    return re.sub(r'<script type="application/json" id="report-data">.*?</script>', "", text, flags=re.S)


def _report_data(text: str) -> dict:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text, flags=re.S)
    return json.loads(m.group(1))


@pytest.fixture(scope="module")
def report_file(report_db, tmp_path_factory):
    db, first, _ = report_db
    path = tmp_path_factory.mktemp("report-out") / "report.html"
    with open_sandbox(db) as store:
        path.write_text(render(collect(store, first)), encoding="utf-8")
    return path


def test_report_command_defaults_to_latest_run_and_names_runs(report_db, tmp_path, monkeypatch, capsys, tiny_engine):
    db, first, second = report_db
    run = cli_runner(monkeypatch, capsys, lambda: tiny_engine)
    latest = tmp_path / "latest.html"
    code, _, err = run("report", "--db", db, "-o", latest)
    assert code == 0, err
    assert f"run {second}" in err and "1 page" in err
    assert _report_data(latest.read_text())["run"]["run_id"] == second
    named = tmp_path / "first.html"
    code, _, err = run("report", first[:6], "--db", db, "-o", named)  # a unique prefix is enough
    assert code == 0, err
    assert _report_data(named.read_text())["run"]["run_id"] == first
    code, _, err = run("report", "nosuchrun", "--db", db, "-o", tmp_path / "x.html")
    assert code != 0 and "no run 'nosuchrun'" in err


def test_report_is_self_contained_html(report_file):
    text = report_file.read_text(encoding="utf-8")
    outside = _without_data(text)
    parser = _Links()
    parser.feed(text)
    # No network at view time: nothing fetched from anywhere (the page's uris are data, escaped inside the JSON).
    assert not [u for u in parser.urls if re.match(r"\s*(https?:|//|ftp:)", u, re.I)], parser.urls
    assert not re.search(r"url\(\s*['\"]?\s*(https?:)?//", outside, re.I)
    assert "@import" not in outside and '<link rel="stylesheet"' not in outside
    assert not re.search(r"<(iframe|object|embed|img)\b", outside, re.I)
    assert "http://" not in outside and "https://" not in outside.replace("https://example.com", "")
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    # A crawled title never becomes markup: escaped in the static HTML, "<\/script>" inside the JSON.
    assert XSS_TITLE not in text and '<script>alert("x")' not in text
    for section in (
        "summary",
        "documents",
        "doc-table",
        "intent",
        "intent-map",
        "cannibalisation",
        "keywords",
        "failures",
        "search",
    ):
        assert section in parser.ids, section
    # The static intent map: one dot per analysed page.
    assert len(re.findall(r'<circle class="pt"', outside)) == len(PAGES)
    # Renderers of the per-document views are in the (inline) script.
    for marker in ('class="tok" style="opacity:', 'svg class="chart heatmap', "token-chart", "DataTable"):
        assert marker.replace('\\"', '"') in text, marker


def test_report_data_holds_the_run(report_file, report_db):
    data = _report_data(report_file.read_text(encoding="utf-8"))
    run = data["run"]
    assert run["command"] == "analyze --urls pages.txt" and run["model"] == "test-model"
    assert (run["n_docs"], run["n_done"], run["n_failed"]) == (len(PAGES) + 1, len(PAGES), 1)
    failed = [d for d in data["docs"] if d["s"] == "failed"]
    assert failed[0]["e"] == "HTTP 500 Internal Server Error" and failed[0]["c"] == []
    done = [d for d in data["docs"] if d["s"] == "done"]
    assert {d["t"] for d in done} >= {XSS_TITLE, "Running shoes"}
    for doc in done:
        assert doc["c"], doc["u"]
        ranks = [c[0] for c in doc["c"]]
        assert ranks == sorted(ranks)
        for _rank, _prompt, ppl, conf, config, tokens, probs in doc["c"]:
            assert ppl > 0 and 0 <= conf <= 1 and config.startswith(("k=", "beam="))
            assert len(tokens) == len(probs) > 0 and all(0 <= p <= 100 for p in probs)
        words, counts = doc["w"]
        assert len(counts) == len(words) and all(len(row) == len(doc["c"]) for row in counts)
        assert doc["cl"] is not None
    assert any(d["k"] for d in done)  # key phrases (random model: some pages may have none)
    assert len(data["points"]) == len(PAGES) and data["clusters"]
    assert data["pairs"] is not None and "similarity" in data["pairs"]["columns"]
    kw = data["keywords"]
    assert kw["total"] == 2 and "keyword" in kw["columns"] and "page" in kw["columns"]


PROBE = """
const q = s => document.querySelectorAll(s);
const rows = s => [...q(s + ' tbody tr')].filter(tr => !tr.querySelector('td.empty')).length;
const opacities = [...q('#doc-detail .tok')].map(e => parseFloat(e.style.opacity));
return {
  candidates: rows('#doc-detail table.candidates'),
  tokens: opacities.length, shaded: opacities.filter(o => o >= 0.25 && o <= 1).length,
  heatmap_cells: q('#doc-detail svg.heatmap rect.hm-cell').length,
  token_bars: q('#doc-detail svg.token-chart rect.tbar-rect').length,
  chart_title: document.getElementById('chart-title').textContent,
  key_phrases: q('#doc-detail .key-phrases span').length,
  map_points: q('#intent-map circle.pt').length,
  highlighted: q('#intent-map circle.pt.hl').length,
  clusters: rows('#cluster-table table.clusters'),
  pairs: document.getElementById('pair-table').textContent.length,
  keyword_rows: rows('#keyword-table table'),
  failures: rows('#failures table.failures'),
  doc_rows: rows('#doc-table table.documents'),
  doc_count: q('#doc-table .tbar span')[0].textContent,
  detail_title: document.querySelector('#doc-detail .page-title').textContent,
};
"""


def test_report_in_headless_chromium(report_file, tmp_path):
    from revprompt.plugins.browser import find_chromium, visit

    _, _, reason = find_chromium()
    if reason:
        pytest.skip(f"headless Chromium unavailable: {reason}")
    from selenium.webdriver.common.by import By

    initial = {}

    def actions(driver):
        initial.update(driver.execute_script(PROBE))
        # Open the "Running shoes" page through the search box and a click, pick its second candidate.
        box = driver.find_element(By.ID, "search")
        box.send_keys("running shoes")
        driver.execute_script("return new Promise(r => setTimeout(r, 300))")
        driver.find_element(By.CSS_SELECTOR, "#doc-table table.documents tbody tr.clickable").click()
        rows = driver.find_elements(By.CSS_SELECTOR, "#doc-detail table.candidates tbody tr.clickable")
        if len(rows) > 1:
            rows[1].click()
        driver.execute_script("window.scrollTo(0, 0)")

    shot = tmp_path / "report.png"
    seen = visit(report_file, probe=PROBE, screenshot=shot, actions=actions)
    print(f"\nreport screenshot: {shot}\nreport html: {report_file}\nrendered in {seen.rendered_ms:.0f} ms")
    assert seen.errors == [], seen.errors
    assert seen.external_requests == [], seen.external_requests
    assert seen.requests and seen.requests[0].startswith("file:")
    first = initial  # as opened: the first analysed page shown, nothing filtered
    assert first["doc_count"] == f"{len(PAGES) + 1} pages" and first["failures"] == 1 and first["keyword_rows"] == 2
    assert first["candidates"] >= 1 and first["tokens"] == first["shaded"] >= first["candidates"]
    assert first["heatmap_cells"] >= 1 and first["token_bars"] >= 1 and first["map_points"] == len(PAGES)
    assert first["clusters"] >= 1 and first["pairs"] > 0
    r = seen.results
    assert r["doc_count"].startswith("1 of") and r["doc_rows"] == 1  # the search filtered the pages
    assert r["detail_title"] == "Running shoes"
    assert r["candidates"] >= 1 and r["tokens"] >= r["candidates"]
    assert r["heatmap_cells"] >= 1 and r["token_bars"] >= 1
    if r["candidates"] > 1:
        assert r["chart_title"].startswith("prompt #2")
    assert r["map_points"] == len(PAGES) and r["highlighted"] == 1
    assert r["tokens"] == r["shaded"] and r["failures"] == 0  # the search hides the failure
    assert r["keyword_rows"] == 0  # no keyword for "running shoes"
    assert shot.exists() and shot.stat().st_size > 10_000
