"""The TUI's run list counts duplicates (pages stored as copies of another page, unanalysed) beside failures."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_tui import SIZE, add_run, make_app, screen_text  # noqa: E402

from revprompt.core.store import Store  # noqa: E402
from revprompt.core.types import Candidate, DecodeConfig, Document, SweepResult  # noqa: E402
from revprompt.tui.data import ResultsDB  # noqa: E402


def result() -> SweepResult:
    cand = Candidate(
        prompt="How do I prune roses?",
        token_ids=[1, 2],
        tokens=["How", "?"],
        token_probs=[0.5, 0.6],
        perplexity=1.8,
        mean_nll=0.59,
        configs=[DecodeConfig(4, 0.3)],
        rank=1,
    )
    return SweepResult([cand], 20, False, 1.0)


def build(path: str) -> str:
    with Store(path) as store:
        add_run(store, "crawl001", "analyze --crawl https://roses.example/", "key-crawl", datetime(2025, 3, 1, 10, 0))
        add_run(store, "clean002", "analyze https://roses.example/a", "key-clean", datetime(2025, 2, 1, 10, 0))
        for uri in ("https://roses.example/", "https://roses.example/pruning"):
            store.save_document("crawl001", Document(uri=uri, text="Prune roses in spring.", status="done"), result())
        store.save_document("crawl001", Document(uri="https://roses.example/gone").failed("HTTP 404"))
        for uri in ("https://roses.example/pruning?print=1", "https://roses.example/index.html"):
            copy = Document(
                uri=uri,
                text="Prune roses in spring.",
                status="duplicate",
                meta={"duplicate_of": "https://roses.example/pruning"},
            )
            store.save_document("crawl001", copy)
        store.save_document("clean002", Document(uri="https://roses.example/a", text="Roses.", status="done"), result())
    return path


def test_runs_count_duplicates(tmp_path):
    db = ResultsDB(build(str(tmp_path / "dups.duckdb")))
    try:
        runs = {r["run_id"]: r for r in db.runs()}
    finally:
        db.close()
    crawl = runs["crawl001"]
    assert (crawl["n_docs"], crawl["n_done"], crawl["n_failed"], crawl["n_duplicates"]) == (5, 2, 1, 2)
    assert runs["clean002"]["n_duplicates"] == 0


def test_run_list_shows_duplicates_beside_failures(tmp_path):
    path = build(str(tmp_path / "dups.duckdb"))

    async def go():
        app = make_app(path)
        async with app.run_test(size=SIZE):
            rows = [line for line in screen_text(app).splitlines() if line.startswith(("crawl001", "clean002"))]
            assert any("2/5 (1✗ 2 dup)" in line for line in rows if line.startswith("crawl001")), rows
            clean = next(line for line in rows if line.startswith("clean002"))
            assert "1/1" in clean and "dup" not in clean and "✗" not in clean

    asyncio.run(go())
