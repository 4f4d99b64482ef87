"""Keyword–page matching (`revprompt match`), Search Console import (`revprompt gsc import`) and the crawler exports
`--urls` reads (issue #17).

Everything runs on the tiny random-weight Gemma 3 (real tokenizer) and real DuckDB files in tmp_path; MiniLM is
replaced by a hashed bag of words so no embedding model loads. Where a test needs to know which page the model
prefers (the Search Console report), the NLL is replaced by a word-overlap score: the code around it is real.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import zipfile

import numpy as np
import pytest
from conftest import cli_runner

from revprompt.core.store import Store
from revprompt.core.types import Document
from revprompt.plugins import match as matching
from revprompt.plugins.testing import make_result, run_batch

PAGES = [
    (
        "https://example.com/taps",
        "Fix a leaking tap",
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
        for word in text.lower().replace(",", " ").replace(".", " ").split():
            out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def overlap_nll(keyword: str, text: str) -> float:
    """A stand-in NLL: lower the more of the keyword's words the page has."""
    words = set(keyword.lower().split())
    page = set(text.lower().replace(",", " ").replace(".", " ").split())
    return 5.0 - 4.0 * len(words & page) / max(len(words), 1)


@pytest.fixture
def site_db(tmp_path):
    db = str(tmp_path / "site.duckdb")
    items = [
        (Document(uri, text, title=title, source="url"), make_result([f"about {title.lower()}?"]))
        for uri, title, text in PAGES
    ]
    items.append((Document("https://example.com/broken", "", source="url", error="HTTP 500"), None))
    with Store(db) as store:
        run_id = run_batch(store, items, command="analyze --urls pages.txt")
    return db, run_id


@pytest.fixture
def embed_calls(monkeypatch):
    from revprompt.plugins import embeddings

    calls = []

    def fake(texts, batch_size=64):
        calls.append(list(texts))
        return bag_of_words(texts)

    monkeypatch.setattr(embeddings, "embed", fake)
    return calls


@pytest.fixture
def revprompt(monkeypatch, capsys, tiny_engine, embed_calls):
    return cli_runner(monkeypatch, capsys, lambda: tiny_engine)


@pytest.fixture
def overlap_scores(monkeypatch):
    def score(self, keywords, pages, wanted):
        return {(k, p): overlap_nll(keywords[k], pages[p].text) for k, ps in wanted.items() for p in ps}

    monkeypatch.setattr(matching.Matcher, "score", score)


def rows(db: str, sql: str, params=()):
    with Store(db) as store:
        return store.query(sql, list(params))[1]


# -- the score ------------------------------------------------------------------------------------------------------
def test_keyword_scores_equal_score_continuations(tiny_model, gemma_tokenizer):
    """Prefix encoded once, head on real rows only, batched and sorted: the same numbers as the reference."""
    from revprompt.core.keyword_scoring import ScoringStats, score_keywords
    from revprompt.core.prompt_format import encode_prefix, encode_prompt
    from revprompt.core.scoring import score_continuations

    page = PAGES[0][2]
    keywords = ["fix leaking tap", "", "how do I repot an orchid in spring with bark", "tap", "x " * 40]
    prefix = encode_prefix(gemma_tokenizer, page, 64)
    reference = score_continuations(tiny_model, prefix.ids, [encode_prompt(gemma_tokenizer, k, 12) for k in keywords])
    stats = ScoringStats()
    ours = score_keywords(tiny_model, gemma_tokenizer, page, keywords, 64, 12, stats=stats)
    np.testing.assert_allclose(ours, [s.mean_nll for s in reference], rtol=1e-4, atol=1e-4)
    small = score_keywords(tiny_model, gemma_tokenizer, page, keywords, 64, 12, max_rows=4)  # many small batches
    np.testing.assert_allclose(small, ours, rtol=1e-4, atol=1e-4)
    assert stats.pages == 1 and stats.pairs == len(keywords) and stats.prefix_tokens == len(prefix.ids)


def per_pair_nll(model, prefix: list[int], continuation: list[int]) -> float:
    """The straightforward reference: the whole sequence through the model, no cache, no packing."""
    import torch

    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([prefix + continuation])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    n = len(prefix)
    return -float(np.mean([float(logprobs[n - 1 + t, tok]) for t, tok in enumerate(continuation)]))


@pytest.mark.parametrize("window, softcap", [(512, None), (6, 30.0)])
def test_batched_page_groups_equal_per_pair_reference(gemma_tokenizer, window, softcap):
    """Pages packed in groups, their keywords packed across pages: the per-pair numbers, group and batch sizes
    notwithstanding, sliding window (6 tokens: shorter than the pages) and logit softcap included; the previous
    page-by-page path agrees too."""
    from conftest import make_tiny_gemma

    from revprompt.core.keyword_scoring import ScoringStats, score_encoded_page_by_page, score_pages
    from revprompt.core.prompt_format import encode_prefix, encode_prompt

    model = make_tiny_gemma(seed=1, sliding_window=window)
    model.config.final_logit_softcapping = softcap
    texts = [text for _, _, text in PAGES] + ["Short page.", "A much longer page about taps. " * 30]
    keyword_sets = [
        ["fix leaking tap", "", "how do I repot an orchid in spring with bark"],
        ["tap"],
        [],  # a page nothing is scored on
        ["cheap flights to rome in may", "x " * 40, "orchid"],
        ["running shoes for flat feet", "tap washer"],
        ["leaking kitchen tap", "", "fix leaking tap"],
    ]
    jobs = [
        (encode_prefix(gemma_tokenizer, t, 24).ids, [encode_prompt(gemma_tokenizer, k, 12) for k in ks])
        for t, ks in zip(texts, keyword_sets)
    ]
    reference = [[per_pair_nll(model, prefix, c) for c in cs] for prefix, cs in jobs]
    stats = ScoringStats()
    seen = []
    batched = score_pages(model, jobs, stats=stats, progress=lambda done, total: seen.append((done, total)))
    assert [len(v) for v in batched] == [len(ks) for ks in keyword_sets]
    for got, want in zip(batched, reference):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert seen == [(5, 5)]  # one group: 5 pages with keywords, 6 x <= 26 prefix tokens < 1024
    assert stats.pages == 5 and stats.pairs == 12
    assert stats.prefix_tokens == sum(len(p) for p, cs in jobs if cs)
    # Many small groups and forwards: one page per group, at most 5 keyword tokens per forward.
    seen.clear()
    small = score_pages(model, jobs, max_rows=5, group_tokens=1, progress=lambda d, t: seen.append((d, t)))
    for got, want in zip(small, reference):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert seen == [(d, 5) for d in range(1, 6)]
    for (prefix, cs), want in zip(jobs, reference):
        np.testing.assert_allclose(score_encoded_page_by_page(model, prefix, cs), want, rtol=1e-4, atol=1e-4)
    # The scores really depend on the page (the test could not pass with a page-blind model).
    assert abs(batched[0][0] - per_pair_nll(model, jobs[1][0], jobs[0][1][0])) > 1e-3
    with pytest.raises(ValueError, match="EOS"):
        score_pages(model, [(jobs[0][0], [[]])])


def test_matcher_batched_and_page_by_page_scores_agree(tiny_engine):
    pages = [matching.Page(uri, text, title) for uri, title, text in PAGES]
    matcher = matching.Matcher(tiny_engine, shortlist=3, embed=bag_of_words)
    keywords = ["fix a leaking kitchen tap", "cheap flights to rome", "orchid", "running shoes flat feet"]
    wanted = {k: {(k + i) % len(pages) for i in range(3)} for k in range(len(keywords))}
    fast = matcher.score(keywords, pages, wanted)
    slow = matcher.score(keywords, pages, wanted, page_by_page=True)
    assert fast.keys() == slow.keys() == {(k, p) for k, ps in wanted.items() for p in ps}
    np.testing.assert_allclose([fast[key] for key in sorted(fast)], [slow[key] for key in sorted(fast)], atol=1e-4)
    assert matcher.stats.pairs == 2 * 12


def test_matcher_shortlists_then_ranks_by_nll(tiny_engine):
    pages = [matching.Page(uri, text, title) for uri, title, text in PAGES]
    matcher = matching.Matcher(tiny_engine, shortlist=2, no_page_nll=1e9, margin=0.0, embed=bag_of_words)
    results = matcher.match(["fix a leaking kitchen tap", "cheap flights to rome"], pages)
    for r in results:
        assert len(r.scored) == 2 and r.scored[0].nll <= r.scored[1].nll
        assert max(s.cosine_rank for s in r.scored) <= 2  # the two nearest pages by cosine
        assert r.answered and r.margin == pytest.approx(r.scored[1].nll - r.scored[0].nll)
    assert {pages[s.page].uri for s in results[0].scored} >= {"https://example.com/taps"}
    assert matcher.stats.pairs == 4


# -- revprompt match --------------------------------------------------------------------------------------------
def test_match_cli_stores_keyword_matches(site_db, revprompt, tmp_path, embed_calls):
    db, run_id = site_db
    kw = tmp_path / "keywords.txt"
    kw.write_text("# my keywords\nfix a leaking tap\nrepot orchid\n\nfix a leaking tap\n", encoding="utf-8")
    code, out, err = revprompt("match", kw, "--keyword", "cheap flights rome", "--db", db, "--shortlist", "3")
    assert code == 0, err
    assert "fix a leaking tap" in out and "runner-up" in out and "keyword_matches" in err
    got = rows(
        db,
        "SELECT keyword, rank, doc_id, run_id, uri, nll, cosine, answers, match_id FROM keyword_matches "
        "ORDER BY keyword, rank",
    )
    assert len(got) == 3 * 3  # three distinct keywords x a shortlist of three of the four analysed pages
    assert {r[0] for r in got} == {"fix a leaking tap", "repot orchid", "cheap flights rome"}
    assert all(r[3] == run_id and r[4].startswith("https://example.com/") for r in got)
    assert "https://example.com/broken" not in {r[4] for r in got}  # failed pages are not candidates
    for keyword in {r[0] for r in got}:
        nlls = [r[5] for r in got if r[0] == keyword]
        assert nlls == sorted(nlls) and [r[1] for r in got if r[0] == keyword] == [1, 2, 3]
    # Page vectors are cached: a second match embeds only its keyword.
    embed_calls.clear()
    code, out, err = revprompt("match", "-k", "repot orchid", "--db", db, "--json", "--shortlist", "2")
    assert code == 0, err
    assert embed_calls == [["repot orchid"]]
    obj = json.loads(out.strip().splitlines()[0])
    assert obj["keyword"] == "repot orchid" and obj["best"]["uri"].startswith("https://example.com/")
    assert set(obj) >= {"runner_up", "margin", "answered", "cannibalisation"}
    # The keyword's earlier rows for this run were replaced, not added to.
    assert rows(db, "SELECT count(*) FROM keyword_matches WHERE keyword = 'repot orchid'")[0][0] == 2


def test_match_verdicts_no_page_and_cannibalisation(site_db, revprompt, overlap_scores):
    db, _ = site_db
    code, out, err = revprompt(
        "match",
        "-k",
        "quantum chromodynamics lecture",
        "-k",
        "orchid",
        "-k",
        "choose flights",
        "--db",
        db,
        "--no-page-nll",
        "3.0",
        "--margin",
        "0.5",
        "--json",
    )
    assert code == 0, err
    res = {o["keyword"]: o for o in map(json.loads, out.strip().splitlines())}
    assert res["quantum chromodynamics lecture"]["answered"] is False  # no page has any of its words
    assert res["orchid"]["answered"] is True and res["orchid"]["best"]["uri"] == "https://example.com/orchids"
    assert res["orchid"]["cannibalisation"] is False and res["orchid"]["margin"] == 4.0
    # "choose" is on the shoes page, "flights" on the Rome page: two pages answer it equally well.
    both = res["choose flights"]
    assert both["answered"] and both["cannibalisation"] and both["margin"] == 0.0
    assert {both["best"]["uri"], both["runner_up"]["uri"]} == {"https://example.com/shoes", "https://example.com/rome"}
    assert rows(
        db,
        "SELECT rank, cannibalisation FROM keyword_matches WHERE keyword = 'choose flights' "
        "AND rank <= 3 ORDER BY rank",
    ) == [(1, True), (2, True), (3, False)]
    code, out, _ = revprompt("match", "-k", "quantum chromodynamics lecture", "--db", db, "--no-page-nll", "3.0")
    assert "no page answers this" in out
    verdicts = rows(
        db, "SELECT answers FROM keyword_matches WHERE keyword = 'quantum chromodynamics lecture' AND rank = 1"
    )
    assert verdicts == [(False,)]


def test_match_reads_a_keyword_csv(site_db, revprompt, tmp_path):
    db, _ = site_db
    csv_file = tmp_path / "ahrefs.csv"
    csv_file.write_bytes(codecs.BOM_UTF8 + b'Keyword,Volume,KD\n"shoes, flat feet",1200,10\nrepot orchid,90,3\n')
    code, _, err = revprompt("match", csv_file, "--db", db, "--shortlist", "1")
    assert code == 0, err
    assert {r[0] for r in rows(db, "SELECT keyword FROM keyword_matches")} == {"shoes, flat feet", "repot orchid"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["match"], "no keywords"),
        (["match", "-k", "x", "--db", "{tmp}/absent.duckdb"], "no database"),
        (["match", "{tmp}/absent.txt", "--db", "{db}"], "no such keywords file"),
        (["match", "{tmp}/latin1.txt", "--db", "{db}"], "not UTF-8"),
        (["match", "{tmp}/binary.txt", "--db", "{db}"], "looks binary"),
        (["match", "{tmp}/empty.txt", "--db", "{db}"], "no keywords"),
        (["match", "-k", "x", "--db", "{db}", "--run", "nosuchrun"], "no run nosuchrun"),
        (["match", "--from-gsc", "--db", "{db}"], "no Search Console queries"),
        (["match", "-k", "x", "--db", "{db}", "--shortlist", "0"], "shortlist"),
    ],
)
def test_match_bad_input_is_one_clear_line(site_db, revprompt, tmp_path, args, message):
    db, _ = site_db
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 pr\xeas de chez moi\n".encode("latin-1"))
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01\x02keyword\x00")
    (tmp_path / "empty.txt").write_text("# nothing\n\n", encoding="utf-8")
    args = [a.format(tmp=tmp_path, db=db) for a in args]
    code, out, err = revprompt(*args)
    assert code != 0
    assert message in err + out, err + out  # cli_runner also fails on any traceback


# -- revprompt gsc import ---------------------------------------------------------------------------------------
API_CSV = """query,page,clicks,impressions,ctr,position
fix leaking tap,https://example.com/orchids,3,100,0.03,4.0
fix leaking tap,https://example.com/taps/,1,10,0.1,9.0
repot orchid,https://example.com/orchids,5,50,0.1,2.5
quantum chromodynamics lecture,https://example.com/shoes,0,40,0,30
cheap flights rome,https://example.com/missing,2,60,0.033,7
"""

# searchdata_url_impression columns (Google's bulk-export table reference); one anonymised row.
BIGQUERY_CSV = """data_date,site_url,url,query,is_anonymized_query,is_anonymized_discover,country,search_type,device,is_amp_top_stories,impressions,clicks,sum_position
2026-11-01,sc-domain:example.com,https://example.com/taps,fix leaking tap,false,false,gbr,WEB,MOBILE,false,10,1,20
2026-11-02,sc-domain:example.com,https://example.com/taps,fix leaking tap,false,false,usa,WEB,DESKTOP,false,30,2,30
2026-11-02,sc-domain:example.com,https://example.com/taps,,true,false,usa,WEB,DESKTOP,false,5,0,10
"""

LOOKER_CSV = """Landing Page,Query,Url Clicks,Impressions,URL CTR,Average Position
https://example.com/rome,cheap flights rome,"1,200","10,000",12%,3.5
"""


def ui_zip(path, queries: bool = True, pages: bool = True):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        if queries:
            z.writestr(
                "Queries.csv",
                "Top queries,Clicks,Impressions,CTR,Position\n"
                "fix leaking tap,4,120,3.33%,5.2\nrepot orchid,5,50,10%,2.5\n",
            )
        if pages:
            z.writestr(
                "Pages.csv", "Top pages,Clicks,Impressions,CTR,Position\nhttps://example.com/orchids,8,150,5.33%,3.1\n"
            )
        z.writestr("Countries.csv", "Country,Clicks,Impressions,CTR,Position\nUnited Kingdom,9,170,5.29%,4\n")
        z.writestr("Filters.csv", "Filter,Value\nSearch type,Web\n")
    path.write_bytes(buf.getvalue())
    return path


def gsc_rows(db):
    return rows(
        db,
        "SELECT format, query, page, clicks, impressions, ctr, position, n_rows FROM gsc_rows "
        "ORDER BY format, query, page",
    )


def test_gsc_import_api_csv_and_json(revprompt, tmp_path):
    db = str(tmp_path / "gsc.duckdb")
    (tmp_path / "api.csv").write_text(API_CSV, encoding="utf-8")
    code, _, err = revprompt("gsc", "import", tmp_path / "api.csv", "--db", db)
    assert code == 0, err
    assert "5 query x page rows" in err and "Search Analytics API" in err
    got = gsc_rows(db)
    assert ("api", "fix leaking tap", "https://example.com/orchids", 3.0, 100.0, 0.03, 4.0, 1) in got
    # The API's JSON response: keys in the request's dimension order; the URL is the page.
    response = {
        "rows": [
            {
                "keys": ["https://example.com/taps", "fix leaking tap"],
                "clicks": 2,
                "impressions": 20,
                "ctr": 0.1,
                "position": 3.0,
            }
        ],
        "responseAggregationType": "byPage",
    }
    (tmp_path / "api.json").write_text(json.dumps(response), encoding="utf-8")
    code, _, err = revprompt("gsc", "import", tmp_path / "api.json", "--db", db)
    assert code == 0, err
    assert ("api", "fix leaking tap", "https://example.com/taps", 2.0, 20.0, 0.1, 3.0, 1) in gsc_rows(db)
    # Importing a file again replaces its rows.
    code, _, err = revprompt("gsc", "import", tmp_path / "api.csv", "--db", db)
    assert code == 0 and "replaced 5 rows" in err
    assert len(gsc_rows(db)) == 6


def test_gsc_import_bigquery_looker_and_ui_zip(revprompt, tmp_path):
    db = str(tmp_path / "gsc.duckdb")
    (tmp_path / "bq.csv").write_text(BIGQUERY_CSV, encoding="utf-8")
    (tmp_path / "looker.csv").write_bytes(codecs.BOM_UTF8 + LOOKER_CSV.encode())
    code, _, err = revprompt(
        "gsc", "import", tmp_path / "bq.csv", tmp_path / "looker.csv", ui_zip(tmp_path / "Performance.zip"), "--db", db
    )
    assert code == 0, err
    assert "1 anonymized skipped" in err and err.count("no query x page pairs") == 1  # the zip's note only
    got = {(r[0], r[1], r[2]): r for r in gsc_rows(db)}
    # BigQuery: two days aggregated; position = (sum_position + impressions) / impressions (zero-based sums).
    bq = got[("bigquery", "fix leaking tap", "https://example.com/taps")]
    assert bq[3:5] == (3.0, 40.0) and bq[5] == pytest.approx(3 / 40) and bq[6] == pytest.approx(50 / 40 + 1)
    assert bq[7] == 2
    lk = got[("looker", "cheap flights rome", "https://example.com/rome")]
    assert lk[3:5] == (1200.0, 10000.0) and lk[5] == pytest.approx(0.12) and lk[6] == 3.5
    # The UI zip: queries and pages separately (no pairs), CTR given as a percentage; other CSVs ignored.
    assert got[("ui_queries", "repot orchid", None)][3:7] == (5.0, 50.0, 0.1, 2.5)
    assert got[("ui_pages", None, "https://example.com/orchids")][3:5] == (8.0, 150.0)
    assert {r[0] for r in got} == {"bigquery", "looker", "ui_queries", "ui_pages"}


def test_gsc_import_semicolon_decimal_comma(revprompt, tmp_path):
    db = str(tmp_path / "gsc.duckdb")
    (tmp_path / "de.csv").write_text(
        "query;page;clicks;impressions;ctr;position\n"
        "wasserhahn tropft;https://example.com/taps;1.234;5.000;24,68%;3,5\n",
        encoding="utf-8",
    )
    code, _, err = revprompt("gsc", "import", tmp_path / "de.csv", "--db", db)
    assert code == 0, err
    assert gsc_rows(db)[0][3:5] == (1234.0, 5000.0) and gsc_rows(db)[0][6] == 3.5


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("cols.csv", b"date,country,clicks\n2026-11-01,gbr,3\n", "no query or page column"),
        ("nometrics.csv", b"query,page\nx,https://example.com/\n", "no clicks or impressions column"),
        (
            "latin1.csv",
            "query,page,clicks,impressions\ncaf\xe9,https://example.com/,1,2\n".encode("latin-1"),
            "not UTF-8",
        ),
        ("utf16.csv", "query,page,clicks\n".encode("utf-16-le"), "looks binary"),
        (
            "notnum.csv",
            b"query,page,clicks,impressions\nx,https://example.com/,lots,2\n",
            "line 2: clicks is not a number",
        ),
        ("empty.csv", b"", "is empty"),
        ("bad.json", b'{"rows": 3}', "no 'rows' list"),
        ("broken.json", b'{"rows": [', "not valid JSON"),
    ],
)
def test_gsc_import_bad_files(revprompt, tmp_path, name, content, message):
    db = str(tmp_path / "gsc.duckdb")
    (tmp_path / name).write_bytes(content)
    code, _, err = revprompt("gsc", "import", tmp_path / name, "--db", db)
    assert code == 2, err
    assert message in err, err


def test_gsc_import_zip_without_queries_and_missing_file(revprompt, tmp_path):
    db = str(tmp_path / "gsc.duckdb")
    code, _, err = revprompt("gsc", "import", ui_zip(tmp_path / "p.zip", queries=False, pages=False), "--db", db)
    assert code == 2 and "without Queries.csv or Pages.csv" in err
    code, _, err = revprompt("gsc", "import", tmp_path / "nope.csv", "--db", db)
    assert code == 2 and "no such Search Console export" in err
    (tmp_path / "fake.zip").write_bytes(b"PK\x03\x04 not really a zip")
    code, _, err = revprompt("gsc", "import", tmp_path / "fake.zip", "--db", db)
    assert code == 2 and "not a readable zip" in err


# -- match --from-gsc -------------------------------------------------------------------------------------------
def test_match_from_gsc_reports_poor_answers_and_mis_mapped_queries(site_db, revprompt, tmp_path, overlap_scores):
    db, _ = site_db
    (tmp_path / "api.csv").write_text(API_CSV, encoding="utf-8")
    assert revprompt("gsc", "import", tmp_path / "api.csv", "--db", db)[0] == 0
    code, out, err = revprompt(
        "match", "--from-gsc", "--db", db, "--no-page-nll", "3.0", "--margin", "0.5", "--shortlist", "2"
    )
    assert code == 0, err
    text = " ".join(out.split())
    # Google shows the orchids page for "fix leaking tap"; the taps page answers it (mis-mapped).
    mis = text.split("Mis-mapped queries")[1]
    assert "fix leaking tap" in mis and "example.com/taps" in mis
    # The shoes page gets impressions for a query it does not answer (an optimisation target).
    targets = text.split("Optimisation targets")[1].split("Mis-mapped")[0]
    assert "example.com/shoes" in targets and "quantum chromodynamics lecture" in targets
    assert "1 query whose Google page is not among the analysed pages" in text  # example.com/missing
    got = rows(
        db, "SELECT uri, gsc_page, impressions FROM keyword_matches WHERE keyword = 'fix leaking tap' ORDER BY rank"
    )
    assert ("https://example.com/orchids", True, 100.0) in got
    assert ("https://example.com/taps", False, 10.0) in got  # the trailing slash in GSC's URL still matches
    code, out, err = revprompt("match", "--from-gsc", "--db", db, "--no-page-nll", "3.0", "--margin", "0.5", "--json")
    res = {o["keyword"]: o for o in map(json.loads, out.strip().splitlines())}
    assert res["fix leaking tap"]["gsc"]["mis_mapped"] is True
    assert res["quantum chromodynamics lecture"]["gsc"]["answered_poorly"] is True
    assert res["repot orchid"]["gsc"] == {"google_page_in_db": True, "answered_poorly": False, "mis_mapped": False}


def test_match_from_gsc_ui_zip_says_it_has_no_pairs(site_db, revprompt, tmp_path, overlap_scores):
    db, _ = site_db
    assert revprompt("gsc", "import", ui_zip(tmp_path / "ui.zip"), "--db", db)[0] == 0
    code, out, err = revprompt("match", "--from-gsc", "--db", db, "--limit", "1")
    assert code == 0, err
    assert "without query x page pairs" in " ".join(out.split())
    assert {r[0] for r in rows(db, "SELECT keyword FROM keyword_matches")} == {"fix leaking tap"}  # --limit 1


# -- --urls: crawler exports ------------------------------------------------------------------------------------
SF_CSV = (
    '"Address","Content Type","Status Code","Status","Indexability","Indexability Status","Title 1"\n'
    '"https://example.com/taps?utm_source=x","text/html; charset=UTF-8","200","OK","Indexable","","Taps"\n'
    '"https://example.com/old","text/html; charset=UTF-8","301","Moved Permanently","Non-Indexable",'
    '"Redirected",""\n'
    '"https://example.com/orchids","text/html; charset=UTF-8","200","OK","Indexable","","Orchids"\n'
)


def test_urls_reads_screaming_frog_internal_html(tmp_path):
    from revprompt.sources.web import read_url_list

    path = tmp_path / "internal_html.csv"
    path.write_bytes(codecs.BOM_UTF8 + SF_CSV.encode())
    assert read_url_list(str(path), "urls") == ["https://example.com/taps", "https://example.com/orchids"]
    # A plain URL list is read as before.
    plain = tmp_path / "urls.txt"
    plain.write_text("https://example.com/a\n# comment\nhttps://example.com/b\n", encoding="utf-8")
    assert read_url_list(str(plain), "urls") == ["https://example.com/a", "https://example.com/b"]


def test_analyze_urls_advertools_uses_body_text_without_fetching(revprompt, tmp_path, monkeypatch):
    from revprompt.sources import web

    monkeypatch.setattr(web, "fetch_page", lambda *a, **k: pytest.fail("a page with body_text was fetched"))
    lines = [
        {
            "url": "https://example.com/taps",
            "title": "Fix a tap@@Taps",
            "meta_desc": "How to fix a tap",
            "h1": "Taps",
            "body_text": PAGES[0][2],
            "status": 200,
            "crawl_time": "2026-11-20 10:00:00",
        },
        {"url": "https://example.com/orchids", "title": "Orchids", "body_text": PAGES[1][2], "status": 200},
    ]
    path = tmp_path / "crawl.jl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    db = str(tmp_path / "a.duckdb")
    code, _, err = revprompt("analyze", "--urls", path, "--db", db, "--no-plugins", "--max-new-tokens", "4")
    assert code == 0, err
    got = rows(db, "SELECT uri, title, description, status, source, left(text, 20) FROM documents ORDER BY uri")
    assert got == [
        ("https://example.com/orchids", "Orchids", None, "done", "urls", PAGES[1][2][:20]),
        ("https://example.com/taps", "Fix a tap", "How to fix a tap", "done", "urls", PAGES[0][2][:20]),
    ]
    # A line without body_text is a URL to fetch, like a plain list's.
    from revprompt.sources.crawl_exports import read_crawl_export

    path.write_text(json.dumps({"url": "https://example.com/x", "status": 404}) + "\n", encoding="utf-8")
    assert read_crawl_export(str(path), "urls") == ["https://example.com/x"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "sf.csv",
            ('"Address","Indexability"\n"https://example.com/\xe9","Indexable"\n').encode("latin-1"),
            "not UTF-8",
        ),
        ("sf.csv", b'"Address","Indexability"\n"https://example.com/a","Non-Indexable"\n', "no indexable page"),
        ("crawl.jl", b'{"url": "https://example.com/a", "body_text": "x"}\n{"title": "no url"}\n', "line 2: no 'url'"),
        ("crawl.jl", b'{"url": "https://example.com/a"}\n{"url": \n', "line 2: not a JSON object"),
    ],
)
def test_urls_bad_crawler_exports(revprompt, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    code, _, err = revprompt("analyze", "--urls", path, "--db", str(tmp_path / "a.duckdb"))
    assert code == 2, err
    assert message in err, err


def test_docs_queries_on_keyword_tables_run(site_db, revprompt, tmp_path, overlap_scores):
    """Every SQL example of docs/queries.md's keyword section runs in the sandbox on a matched database."""
    import re
    from pathlib import Path

    db, _ = site_db
    (tmp_path / "api.csv").write_text(API_CSV, encoding="utf-8")
    assert revprompt("gsc", "import", tmp_path / "api.csv", "--db", db)[0] == 0
    assert (
        revprompt("match", "--from-gsc", "-k", "orchid", "--db", db, "--no-page-nll", "3", "--margin", "0.5", "--json")[
            0
        ]
        == 0
    )
    doc = (Path(__file__).resolve().parent.parent / "docs" / "queries.md").read_text(encoding="utf-8")
    section = doc.split("## Keywords and pages")[1].split("\n## ")[0]
    queries = re.findall(r"```sql\n(.*?)```", section, re.S)
    assert len(queries) >= 8
    for sql in queries:
        code, out, err = revprompt("sql", sql.strip().rstrip(";"), "--db", db, "--json")
        assert code == 0, (sql, err)


def test_keyword_views_read_in_the_sandbox(site_db, revprompt, overlap_scores):
    """The TUI views of tui/screens/keyword_views.py read keyword_matches as the TUI would (sandboxed)."""
    from revprompt.core.store import open_sandbox
    from revprompt.core.views import read_view
    from revprompt.tui.screens.keyword_views import DOCUMENT_VIEW, RUN_VIEW

    db, run_id = site_db
    assert revprompt("match", "-k", "orchid", "-k", "quantum chromodynamics", "--db", db, "--no-page-nll", "3")[0] == 0
    orchids = rows(db, "SELECT doc_id FROM documents WHERE uri = 'https://example.com/orchids'")[0][0]
    with open_sandbox(db) as store:
        run = read_view(store, RUN_VIEW, run_id)
        assert run.problem is None and run.has_rows
        assert {r["keyword"] for r in run.rows} == {"orchid", "quantum chromodynamics"}
        assert any("no page answers this" in r["detail"] for r in run.rows)
        page = read_view(store, DOCUMENT_VIEW, orchids)
        assert page.problem is None and [r["verdict"] for r in page.rows if r["keyword"] == "orchid"] == ["best"]
