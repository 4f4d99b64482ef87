"""The Textual TUI (issue F), driven with App.run_test()/Pilot on DuckDB files built here, plus snapshots.

The databases hold fixed, hand-written candidates (real Candidate/SweepResult objects saved through Store) so
that screens and snapshots are deterministic; the paste screen runs a real sweep with the tiny random engine.
"""

from __future__ import annotations

import asyncio
import math
from datetime import datetime

import pytest

from revprompt.core.errors import UserError
from revprompt.core.store import Store
from revprompt.core.types import Candidate, DecodeConfig, Document, SweepResult

SIZE = (80, 24)
CREATED = datetime(2025, 1, 15, 9, 30)

# (title, uri, text, [(config, [(token, prob), ...]), ...]) ; candidates in rank order.
SITE_DOCS = [
    (
        "How to bake sourdough bread",
        "https://bakery.example/sourdough",
        "# How to bake sourdough bread\n\nFeed your starter, mix flour and water, fold, proof overnight, bake hot.",
        [
            (
                (4, 0.3),
                [
                    ("How", 0.62),
                    (" do", 0.81),
                    (" I", 0.77),
                    (" bake", 0.55),
                    (" sourdough", 0.48),
                    (" bread", 0.91),
                    ("?", 0.72),
                    ("<eos>", 0.95),
                ],
            ),
            (
                (2, 0.1),
                [
                    ("Explain", 0.31),
                    (" how", 0.58),
                    (" to", 0.88),
                    (" make", 0.42),
                    (" sourdough", 0.37),
                    (" bread", 0.86),
                    (" at", 0.22),
                    (" home", 0.69),
                    ("<eos>", 0.9),
                ],
            ),
            (
                (15, 0.6),
                [
                    ("Write", 0.18),
                    (" a", 0.66),
                    (" sourdough", 0.12),
                    (" bread", 0.7),
                    (" recipe", 0.51),
                    ("<eos>", 0.83),
                ],
            ),
        ],
    ),
    (
        "Gluten-free banana bread",
        "https://bakery.example/banana-bread",
        "Gluten-free banana bread: ripe bananas, almond flour, eggs, baking soda. Bake 50 minutes.",
        [
            (
                (6, 0.2),
                [
                    ("Give", 0.4),
                    (" me", 0.7),
                    (" a", 0.8),
                    (" gluten", 0.35),
                    ("-free", 0.9),
                    (" banana", 0.6),
                    (" bread", 0.93),
                    (" recipe", 0.74),
                    ("<eos>", 0.92),
                ],
            ),
            (
                (4, 0.5),
                [("Gluten", 0.2), ("-free", 0.85), (" banana", 0.5), (" bread", 0.9), ("?", 0.3), ("<eos>", 0.8)],
            ),
        ],
    ),
    (
        "Best stand mixers for dough",
        "https://bakery.example/mixers",
        "We tested twelve stand mixers on stiff bread dough. The best: a 6-quart bowl-lift model.",
        [
            (
                (2, 0.4),
                [
                    ("Which", 0.5),
                    (" stand", 0.45),
                    (" mixer", 0.8),
                    (" is", 0.6),
                    (" best", 0.55),
                    (" for", 0.85),
                    (" bread", 0.4),
                    (" dough", 0.88),
                    ("?", 0.8),
                    ("<eos>", 0.9),
                ],
            ),
            ((15, 0.1), [("Best", 0.3), (" mixer", 0.4), (" for", 0.7), (" dough", 0.5), ("<eos>", 0.75)]),
        ],
    ),
]
FAILED_DOC = ("https://bakery.example/broken", "HTTP 404 Not Found")
PASTE_TEXT = "Remember to water tomato plants deeply twice a week in summer."


def make_candidate(rank: int, config: tuple[int, float], tokens: list[tuple[str, float]]) -> Candidate:
    probs = [p for _, p in tokens]
    nll = -sum(math.log(p) for p in probs) / len(probs)
    return Candidate(
        prompt="".join(t for t, _ in tokens if t != "<eos>").strip(),
        token_ids=[100 + i for i in range(len(tokens))],
        tokens=[t for t, _ in tokens],
        token_probs=probs,
        perplexity=math.exp(nll),
        mean_nll=nll,
        configs=[DecodeConfig(*config), DecodeConfig(config[0], 0.6)] if rank == 1 else [DecodeConfig(*config)],
        rank=rank,
    )


def add_run(store: Store, run_id: str, command: str, target: str, when: datetime) -> None:
    store.con.execute(
        "INSERT INTO runs (run_id, created_at, finished_at, command, target_key, model, config, status) "
        "VALUES (?, ?, ?, ?, ?, 'tiny-random', '{}', 'finished')",
        [run_id, when, when, command, target],
    )


def build_db(path: str, analysis: bool = True) -> str:
    """Two runs: a 'site' of three analysed pages and a failed one, and a single pasted text."""
    with Store(path) as store:
        add_run(store, "site0001", "analyze", "https://bakery.example/sitemap.xml", CREATED)
        add_run(store, "text0002", "analyze", "text:1f2e3d", datetime(2025, 1, 14, 8, 0))
        for title, uri, text, cands in SITE_DOCS:
            result = SweepResult([make_candidate(i, c, t) for i, (c, t) in enumerate(cands, 1)], 40, False, 1.5)
            doc = Document(uri=uri, text=text, title=title, source="url", status="done", fetched_at=CREATED)
            store.save_document("site0001", doc, result)
        store.save_document(
            "site0001", Document(uri=FAILED_DOC[0], source="url", fetched_at=CREATED).failed(FAILED_DOC[1])
        )
        paste = SweepResult([make_candidate(1, (4, 0.3), [("Garden", 0.3), (" tips", 0.6), ("<eos>", 0.9)])], 14, False)
        pasted = Document(uri="text:1f2e3d", text=PASTE_TEXT, source="text", status="done")
        store.save_document("text0002", pasted, paste)
        if analysis:
            add_analysis_tables(store)
    return path


def add_analysis_tables(store: Store) -> None:
    """The analysis plugins' tables (their own DDL), filled by hand with the columns the TUI reads."""
    from revprompt.plugins import key_phrases, site_intent, word_frequency

    store.ensure_tables([key_phrases.DDL, word_frequency.DDL, *site_intent.DDL])
    store.insert_rows(
        "key_phrases",
        [
            {"doc_id": 1, "run_id": "site0001", "phrase": phrase, "n": n, "weight": weight, "n_candidates": k}
            for phrase, n, weight, k in [("sourdough bread", 2, 0.92, 3), ("bake", 1, 0.41, 1), ("at home", 2, 0.18, 1)]
        ],
    )
    store.insert_rows(
        "word_frequencies",
        [
            {"doc_id": 2, "candidate_id": cid, "run_id": "site0001", "word": word, "count": count}
            for cid, word, count in [
                (4, "banana", 1),
                (5, "banana", 1),
                (4, "recipe", 1),
                (4, "gluten", 1),
                (5, "gluten", 2),
            ]
        ],
    )
    store.insert_rows(
        "word_frequencies",
        [  # stop words are kept by the plugin, marked
            {"doc_id": 2, "candidate_id": 4, "run_id": "site0001", "word": "me", "count": 5, "stopword": True}
        ],
    )
    store.insert_rows(
        "intent_clusters",
        [
            {"run_id": "site0001", "doc_id": doc_id, "cluster_id": cid, "cluster_label": label}
            for doc_id, cid, label in [(1, 0, "bread recipes"), (2, 0, "bread recipes"), (3, 1, "kitchen equipment")]
        ],
    )
    store.insert_rows(
        "cannibalisation_pairs",
        [
            {
                "run_id": "site0001",
                "doc_id_a": 1,
                "doc_id_b": 2,
                "similarity": 0.81,
                "prompt_a": "How do I bake sourdough bread?",
                "prompt_b": "Give me a gluten-free banana bread recipe",
            }
        ],
    )


@pytest.fixture
def results_db(db_path):
    return build_db(db_path)


@pytest.fixture
def bare_db(tmp_path):
    return build_db(str(tmp_path / "bare.duckdb"), analysis=False)


def run(coro):
    return asyncio.run(coro)


def make_app(path, **kwargs):
    from revprompt.tui.app import RevpromptApp

    kwargs.setdefault("analyzers", [])
    return RevpromptApp(path, **kwargs)


def screen_text(app) -> str:
    """Everything the current screen shows, as plain text."""
    from textual.widgets import DataTable, Static, Tree

    parts = []
    for widget in app.screen.query("*"):
        if isinstance(widget, DataTable):
            for row in range(widget.row_count):
                parts.append(" ".join(str(c) for c in widget.get_row_at(row)))
        elif isinstance(widget, Tree):
            stack = [widget.root]
            while stack:
                node = stack.pop()
                parts.append(str(node.label))
                stack.extend(node.children)
        elif isinstance(widget, Static):
            parts.append(str(widget.render()))
    return "\n".join(parts)


# -- navigation ---------------------------------------------------------------------------------------------


def test_runs_to_token_view_and_back_with_keyboard(results_db):
    from revprompt.tui.screens.document import DocumentScreen
    from revprompt.tui.screens.documents import DocumentsScreen
    from revprompt.tui.screens.runs import RunsScreen
    from revprompt.tui.screens.tokens import TokensScreen
    from revprompt.tui.widgets import TokenConfidence

    async def go():
        app = make_app(results_db)
        async with app.run_test(size=SIZE) as pilot:
            assert isinstance(app.screen, RunsScreen)
            assert "site0001" in screen_text(app) and "text0002" in screen_text(app)
            await pilot.press("enter")  # newest run first: the site
            assert isinstance(app.screen, DocumentsScreen) and app.screen.run_id == "site0001"
            # Sorted by best perplexity; the failed page (no candidates) last.
            shown = [d["title"] or d["uri"] for d in app.screen.shown]
            assert shown[-1] == FAILED_DOC[0] and len(shown) == 4
            first = app.screen.shown[0]
            await pilot.press("enter")
            assert isinstance(app.screen, DocumentScreen) and app.screen.doc_id == first["doc_id"]
            assert app.screen.candidates[0]["rank"] == 1
            await pilot.press("down", "enter")  # the second candidate
            assert isinstance(app.screen, TokensScreen)
            cand = app.screen.candidate
            assert cand["rank"] == 2
            view = app.screen.query_one("#tokens-view", TokenConfidence)
            assert "".join(t for t, _ in view.tokens).replace("<eos>", "").strip() == cand["prompt"]
            await pilot.press("n")  # next candidate
            assert app.screen.candidate["rank"] == 3
            await pilot.press("b", "b")
            assert app.screen.candidate["rank"] == 1
            await pilot.press("m")
            assert view.mode == "heat"
            await pilot.press("escape")
            assert isinstance(app.screen, DocumentScreen)
            await pilot.press("escape")
            assert isinstance(app.screen, DocumentsScreen)
            await pilot.press("escape")
            assert isinstance(app.screen, RunsScreen)
            await pilot.press("escape")  # nothing below the runs
            assert isinstance(app.screen, RunsScreen)

    run(go())


def test_token_view_shades_by_probability():
    from revprompt.tui.widgets.token_view import MIN_OPACITY, opacity_of, token_display

    assert opacity_of(0.0) == pytest.approx(MIN_OPACITY)
    assert opacity_of(1.0) == pytest.approx(1.0)
    assert opacity_of(0.2) < opacity_of(0.5) < opacity_of(0.9)
    assert token_display("a\nb") == "a↵\nb"


def test_token_colours_follow_probability(results_db):
    from textual.color import Color

    from revprompt.tui.widgets import TokenConfidence

    async def go():
        app = make_app(results_db)
        async with app.run_test(size=SIZE) as pilot:
            app.open_candidate(1)
            await pilot.pause()
            view = app.screen.query_one("#tokens-view", TokenConfidence)
            _, _, background, _ = view.colors

            def distance(prob):
                c = view.style_for(prob).color.get_truecolor()
                return abs(Color(c.red, c.green, c.blue).brightness - background.brightness)

            assert distance(0.05) < distance(0.5) < distance(0.95)  # surer tokens stand out more

    run(go())


def test_documents_filter_and_sort(results_db):
    from textual.widgets import Input

    from revprompt.tui.screens.documents import DocumentsScreen

    async def go():
        app = make_app(results_db)
        async with app.run_test(size=SIZE) as pilot:
            app.open_run("site0001")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, DocumentsScreen)
            ppls = [d["best_perplexity"] for d in screen.shown if d["best_perplexity"] is not None]
            assert ppls == sorted(ppls)
            await pilot.press("o")  # -> status
            assert screen.sort_key == "status"
            assert [d["status"] for d in screen.shown] == ["done", "done", "done", "failed"]
            await pilot.press("r")
            assert screen.shown[0]["status"] == "failed"
            await pilot.press("o")  # -> title
            assert screen.sort_key == "title"
            titles = [(d["title"] or d["uri"]).casefold() for d in screen.shown]
            assert titles == sorted(titles)
            await pilot.press("slash")
            assert isinstance(app.focused, Input)
            await pilot.press(*"bread")
            names = {d["title"] for d in screen.shown}
            # "bread" is in two titles, and in the best prompt of the mixer page.
            assert names == {"How to bake sourdough bread", "Gluten-free banana bread", "Best stand mixers for dough"}
            await pilot.press(*["backspace"] * len("bread"))
            await pilot.press(*"failed")
            assert [d["status"] for d in screen.shown] == ["failed"]
            await pilot.press("enter")  # back to the list
            assert not isinstance(app.focused, Input)
            await pilot.press("enter")  # open the failed page: its error shows
            assert "HTTP 404" in screen_text(app)

    run(go())


def active_tab(app) -> str:
    """The label of the document or run screen's active tab."""
    from textual.widgets import TabbedContent

    tabs = app.screen.query_one(TabbedContent)
    return tabs.get_tab(tabs.active).label_text


def test_document_panels_with_analysis_tables(results_db):
    from revprompt.tui.widgets import Heatmap

    async def go():
        app = make_app(results_db)
        async with app.run_test(size=SIZE) as pilot:
            app.open_document(1)
            await pilot.pause()
            # the built-in analyzers' views, as tabs between the candidates and the text
            assert [v.title for v in app.screen.views][:2] == ["Key phrases", "Heatmap"]
            await pilot.press("k")
            assert active_tab(app) == "Key phrases"
            text = screen_text(app)
            assert "sourdough bread" in text and "no key phrases yet" not in text
            await pilot.press("h")
            assert active_tab(app) == "Heatmap"
            matrix = app.screen.query_one(Heatmap).matrix
            assert matrix.source == "candidates"  # word_frequencies has no rows for doc 1: the plugin's counting
            assert matrix.labels[:2] == ["bread", "sourdough"] and matrix.columns == [1, 2, 3]
            assert matrix.counts[0] == [1, 1, 1]
            assert "Words × candidates (counted from the prompts)" in screen_text(app)
            await pilot.press("t")
            assert "Feed your starter" in screen_text(app)
            await pilot.press("c")
            assert active_tab(app) == "Candidates"
            await pilot.press("escape")
            app.open_document(2)
            await pilot.pause()
            matrix = app.screen.query_one(Heatmap).matrix
            assert matrix.source == "table"
            assert matrix.labels[0] == "gluten" and matrix.counts[0] == [1, 2]
            assert "me" not in matrix.labels  # stop words are kept by the plugin, marked, and left out here
            assert "Words × candidates (word_frequencies table)" in screen_text(app)

    run(go())


def test_document_panels_without_analysis_tables(bare_db):
    async def go():
        app = make_app(bare_db)
        async with app.run_test(size=SIZE) as pilot:
            app.open_document(1)
            await pilot.pause()
            await pilot.press("k")
            assert "no key phrases yet (run analysis plugins)" in screen_text(app)
            await pilot.press("escape")
            app.open_run_views("site0001")
            await pilot.pause()
            assert "no intent map yet (run analysis plugins)" in screen_text(app)

    run(go())


def test_intent_map_clusters_pages(results_db):
    from revprompt.tui.screens.document import DocumentScreen
    from revprompt.tui.screens.run_views import RunViewsScreen

    async def go():
        app = make_app(results_db)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("i")  # from the runs list: the highlighted (site) run, on the intent map's tab
            assert isinstance(app.screen, RunViewsScreen) and app.screen.run_id == "site0001"
            assert active_tab(app) == "Intent map"
            text = screen_text(app)
            assert "bread recipes" in text and "kitchen equipment" in text and "0.81" in text
            assert "2 intent clusters over 3 pages" in text
            await pilot.press("down", "enter")  # first page of the biggest cluster
            assert isinstance(app.screen, DocumentScreen) and app.screen.doc_id == 1
            await pilot.press("escape")
            app.screen.query_one("TabbedContent").active = "tab-view-1"  # the cannibalisation pairs
            await pilot.pause()
            assert active_tab(app) == "Cannibalisation"
            app.screen.query_one("#view-1 DataTable").focus()
            await pilot.press("enter")  # opens page A of the pair
            assert isinstance(app.screen, DocumentScreen) and app.screen.doc_id == 1

    run(go())


# -- paste ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def paste_engine(tiny_model, gemma_tokenizer):
    """The tiny random engine, two configurations and the per-config decoder: a real sweep in a moment."""
    from revprompt.core.engine import Engine
    from revprompt.core.types import DEFAULT_SWEEP

    return Engine(
        tiny_model,
        gemma_tokenizer,
        configs=DEFAULT_SWEEP[:2],
        max_new_tokens=6,
        model_name="tiny-random",
        method="reference",
    )


def test_paste_screen_sweeps_and_stores(results_db, paste_engine):
    from textual.widgets import ProgressBar, TextArea

    from revprompt.tui.screens.document import DocumentScreen
    from revprompt.tui.screens.paste import PasteScreen
    from revprompt.tui.screens.runs import RunsScreen

    calls = []

    def factory():
        calls.append(1)
        return paste_engine

    text = "Water tomato plants deeply, twice a week, early in the morning."

    async def go():
        app = make_app(results_db, engine_factory=factory)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("p")
            assert isinstance(app.screen, PasteScreen)
            screen = app.screen
            await pilot.press("ctrl+r")  # nothing pasted yet: nothing runs
            assert not screen.running and screen.saved is None
            screen.query_one(TextArea).insert(text)
            await pilot.press("ctrl+r")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert screen.saved is not None, screen_text(app)
            run_id, doc_id = screen.saved
            assert "saved: run" in screen_text(app)
            assert screen.query_one(ProgressBar).percentage == 1.0
            await pilot.press("enter")  # open the stored document
            assert isinstance(app.screen, DocumentScreen) and app.screen.doc_id == doc_id
            assert app.screen.candidates
            await pilot.press("escape", "escape")
            assert isinstance(app.screen, RunsScreen)
            assert run_id in screen_text(app)  # the runs list was refreshed
            return run_id, doc_id

    run_id, doc_id = run(go())
    assert calls == [1]
    with Store(results_db, read_only=True) as store:
        run_info = store.get_run(run_id)
        assert run_info.command == "tui paste" and run_info.status == "finished" and run_info.model == "tiny-random"
        (doc,) = store.documents(run_id)
        assert doc["doc_id"] == doc_id and doc["text"] == text and doc["status"] == "done"
        assert doc["uri"].startswith("text:") and doc["source"] == "text"
        cands = store.candidates(doc_id)
        assert cands and [c["rank"] for c in cands] == list(range(1, len(cands) + 1))
        assert store.candidate_tokens(cands[0]["candidate_id"])


def test_paste_screen_reports_engine_failure(results_db):
    from textual.widgets import TextArea

    def factory():
        raise UserError("model not found: nowhere/at-all")

    async def go():
        app = make_app(results_db, engine_factory=factory)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("p")
            screen = app.screen
            screen.query_one(TextArea).insert("some text")
            await pilot.press("ctrl+r")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert screen.saved is None and not screen.running
            assert "model not found" in screen_text(app)

    run(go())
    with Store(results_db, read_only=True) as store:
        assert store.query("SELECT count(*) FROM runs")[1][0][0] == 2


def test_preloaded_engine_is_loaded_once_and_reused_for_every_paste(results_db, paste_engine):
    """The resident engine: loaded in a worker as the app opens, before any paste, then reused."""
    from textual.widgets import TextArea

    calls = []

    def factory():
        calls.append(1)
        return paste_engine

    async def go():
        app = make_app(results_db, engine_factory=factory, preload=True)
        async with app.run_test(size=SIZE) as pilot:
            await app.workers.wait_for_complete()
            assert calls == [1] and app.engine_loaded  # loaded without a paste
            await pilot.press("p")
            screen = app.screen
            for text in ("Water tomato plants deeply.", "Knead the dough for ten minutes."):
                area = screen.query_one(TextArea)
                area.clear()
                area.insert(text)
                await pilot.press("ctrl+r")
                await app.workers.wait_for_complete()
                await pilot.pause()
                assert screen.saved is not None, screen_text(app)

    run(go())
    assert calls == [1]


def test_preload_failure_is_reported_by_the_paste(results_db):
    from textual.widgets import TextArea

    def factory():
        raise UserError("model not found: nowhere/at-all")

    async def go():
        app = make_app(results_db, engine_factory=factory, preload=True)
        async with app.run_test(size=SIZE) as pilot:
            await app.workers.wait_for_complete()  # the failed preload shows nothing and keeps the app up
            await pilot.press("p")
            screen = app.screen
            screen.query_one(TextArea).insert("some text")
            await pilot.press("ctrl+r")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert "model not found" in screen_text(app)

    run(go())


def test_paste_runs_analyzers_in_the_same_transaction(results_db):
    from revprompt.tui.data import ResultsDB

    class Counter:
        name = "counter"
        tables = ["CREATE TABLE IF NOT EXISTS cand_count (doc_id BIGINT, run_id VARCHAR, n INTEGER)"]

        def analyze_document(self, doc, result, run_id=None):
            return {"cand_count": [{"n": len(result.candidates), "run_id": run_id}]}

    class Broken:
        name = "broken"
        tables = []

        def analyze_document(self, doc, result):
            raise RuntimeError("boom")

    errors = []
    db = ResultsDB(results_db)
    result = SweepResult([make_candidate(1, (2, 0.1), [("Hi", 0.5), ("<eos>", 0.9)])], 3, False)
    run_id, doc_id = db.save_paste("hello", result, analyzers=[Counter(), Broken()], on_error=errors.append)
    assert db.store.read_only  # back to browsing mode
    assert db.rows("SELECT * FROM cand_count") == [{"doc_id": doc_id, "run_id": run_id, "n": 1}]
    assert len(errors) == 1 and "broken" in errors[0] and "boom" in errors[0]
    db.close()


def test_paste_with_the_registered_analyzers_fills_their_tables(bare_db, results_db):
    from revprompt.tui.data import ResultsDB

    def result():
        cand = make_candidate(1, (2, 0.1), [("Sourdough", 0.5), (" starter", 0.7), (" tips", 0.6), ("<eos>", 0.9)])
        return SweepResult([cand], 6, False)

    db = ResultsDB(bare_db)
    try:
        errors = []
        run_id, doc_id = db.save_paste("Feed the starter daily.", result(), on_error=errors.append)
        assert errors == []
        views = {v.title: v for v in db.views("document")}
        phrases = {r["phrase"] for r in db.view(views["Key phrases"], doc_id).rows}
        assert "sourdough starter" in phrases or "starter" in phrases
        assert db.view(views["Heatmap"], doc_id).source == "table"
    finally:
        db.close()

    # A key_phrases table of an older, narrower shape: the rows do not fit, the result is stored all the same
    # and the problem reported.
    with Store(results_db) as store:
        store.con.execute("DROP TABLE key_phrases")
        store.con.execute("CREATE TABLE key_phrases (doc_id BIGINT, phrase VARCHAR, weight DOUBLE)")
    db = ResultsDB(results_db)
    try:
        errors = []
        run_id, doc_id = db.save_paste("Feed the starter daily.", result(), on_error=errors.append)
        assert any("analysis rows not stored" in e for e in errors)
        assert [c["prompt"] for c in db.candidates(doc_id)] == ["Sourdough starter tips"]
    finally:
        db.close()


# -- SQL ------------------------------------------------------------------------------------------------------


def test_sql_screen_runs_read_only_queries(results_db):
    from textual.widgets import DataTable, TextArea

    from revprompt.tui.screens.sql import SQLScreen

    async def go():
        app = make_app(results_db)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("s")
            assert isinstance(app.screen, SQLScreen)
            table = app.screen.query_one("#sql-results", DataTable)
            assert table.row_count >= 4  # SHOW TABLES on open
            editor = app.screen.query_one(TextArea)
            editor.text = "SELECT status, count(*) AS n FROM documents GROUP BY status ORDER BY status"
            await pilot.press("ctrl+r")
            assert [str(c.label) for c in table.columns.values()] == ["status", "n"]
            assert [table.get_row_at(i) for i in range(table.row_count)] == [["done", "4"], ["failed", "1"]]
            assert "2 rows" in screen_text(app)
            editor.text = "DELETE FROM runs"
            await pilot.press("ctrl+r")
            assert "read-only" in screen_text(app)
            editor.text = "SELECT * FROM no_such_table"
            await pilot.press("ctrl+r")
            assert "query failed" in screen_text(app)
            assert table.row_count == 2  # the last good result stays
            await pilot.press("escape")
            assert not isinstance(app.screen, SQLScreen)

    run(go())
    with Store(results_db, read_only=True) as store:
        assert store.query("SELECT count(*) FROM runs")[1][0][0] == 2


def test_read_only_guard_refuses_writes(results_db):
    from revprompt.tui.data import ResultsDB

    db = ResultsDB(results_db)
    try:
        for sql in (
            "INSERT INTO runs (run_id) VALUES ('x')",
            "ATTACH 'other.duckdb'",
            "COPY runs TO 'x.csv'",
            "CREATE TABLE t (a INT)",
            "SELECT 1 AS a; SELECT 2 AS b",
        ):
            with pytest.raises(UserError, match="read-only"):
                db.query(sql)
        cols, rows, total = db.query("SELECT 2 AS b;")
        assert cols == ["b"] and rows == [(2,)] and total == 1
    finally:
        db.close()


# -- palette, CLI ---------------------------------------------------------------------------------------------


def test_command_palette_opens_screens(results_db):
    from revprompt.tui.screens.document import DocumentScreen
    from revprompt.tui.screens.sql import SQLScreen

    async def go():
        app = make_app(results_db)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("ctrl+p")
            await pilot.press(*"SQL query")
            await pilot.pause(0.3)
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, SQLScreen)
            await pilot.press("escape")
            await pilot.press("ctrl+p")
            await pilot.press(*"doc mixers")
            await pilot.pause(0.3)
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, DocumentScreen) and app.screen.doc_id == 3

    run(go())


def test_cli_command_registered_and_missing_db_is_one_line_error(tmp_path, results_db, monkeypatch):
    import click
    from click.testing import CliRunner

    from revprompt.tui import commands

    group = click.Group("revprompt")
    commands.register_commands(group)
    assert "tui" in group.commands

    result = CliRunner().invoke(group, ["tui", str(tmp_path / "missing.duckdb")])
    assert isinstance(result.exception, UserError)
    assert "no database at" in str(result.exception) and "\n" not in str(result.exception)

    launched = []
    monkeypatch.setattr("revprompt.tui.app.RevpromptApp.run", lambda self: launched.append(self))
    result = CliRunner().invoke(group, ["tui", "--db", results_db, "--model", "some/model"])
    assert result.exit_code == 0, result.output
    (app,) = launched
    assert app.db_path == results_db and app.engine_factory is not None
    app.db.close()

    # the database as an argument: still works, deprecated; with a different --db: refused
    result = CliRunner().invoke(group, ["tui", results_db])
    assert result.exit_code == 0 and "deprecated" in result.output
    assert launched[-1].db_path == results_db
    launched[-1].db.close()
    result = CliRunner().invoke(group, ["tui", results_db, "--db", str(tmp_path / "other.duckdb")])
    assert result.exit_code == 2 and "give only --db" in result.output
    monkeypatch.setenv("REVPROMPT_DB", str(tmp_path / "missing.duckdb"))  # --db's environment variable
    result = CliRunner().invoke(group, ["tui"])
    assert isinstance(result.exception, UserError) and "missing.duckdb" in str(result.exception)


def test_tui_hook_registers_through_pluggy():
    import click
    import pluggy

    from revprompt.core import hookspecs
    from revprompt.core.plugin_manager import BUILTIN_PLUGINS
    from revprompt.tui import commands

    assert "revprompt.tui.commands" in BUILTIN_PLUGINS
    pm = pluggy.PluginManager("revprompt")
    pm.add_hookspecs(hookspecs)
    pm.register(commands)
    group = click.Group("revprompt")
    pm.hook.register_commands(cli=group)
    assert group.commands["tui"] is commands.tui_command


def test_database_without_results_is_a_user_error(tmp_path):
    import duckdb

    from revprompt.tui.data import ResultsDB

    path = str(tmp_path / "other.duckdb")
    duckdb.connect(path).execute("CREATE TABLE t (a INT)").close()
    with pytest.raises(UserError, match="no revprompt results"):
        ResultsDB(path)
    not_db = tmp_path / "notes.txt"
    not_db.write_text("hello")
    with pytest.raises(UserError):
        ResultsDB(str(not_db))


def test_analysis_tables_of_another_shape_do_not_break_screens(bare_db):
    with Store(bare_db) as store:
        store.con.execute("CREATE TABLE key_phrases (doc_id BIGINT, term VARCHAR, score DOUBLE)")
        store.con.execute("INSERT INTO key_phrases VALUES (1, 'sourdough', 0.5)")
        store.con.execute("CREATE TABLE intent_clusters (doc_id BIGINT, label VARCHAR)")

    async def go():
        app = make_app(bare_db)
        async with app.run_test(size=SIZE) as pilot:
            app.open_document(1)
            await pilot.pause()
            await pilot.press("k")
            assert "sourdough" in screen_text(app)  # shown with the columns it has
            await pilot.press("escape")
            app.open_run_views("site0001")
            await pilot.pause()
            assert "cannot read intent_clusters" in screen_text(app)

    run(go())


def add_keyword_matches(store: Store) -> None:
    """Rows as `revprompt match` stores them: "sourdough starter" best answered by page 1, page 2 runner-up."""
    store.insert_rows(
        "keyword_matches",
        [
            {"run_id": "site0001", "keyword": "sourdough starter", "doc_id": doc_id, "rank": rank, "nll": nll,
             "cosine": cos, "gap": gap, "answers": True, "cannibalisation": False, "gsc_page": False, "uri": uri}
            for doc_id, rank, nll, cos, gap, uri in [
                (1, 1, 2.10, 0.71, 0.0, "https://bakery.example/sourdough"),
                (2, 2, 2.95, 0.44, 0.85, SITE_DOCS[1][1]),
            ]
        ],
    )  # fmt: skip


def test_keyword_matches_are_run_and_document_tabs(results_db):
    """`revprompt match` rows get the keyword -> pages tabs (tui/screens/keyword_views.py): a run tab (its
    shortcut `k` opens it from the runs screen) and a document tab; a database without the table has neither."""
    from revprompt.tui.data import ResultsDB
    from revprompt.tui.screens.run_views import RunViewsScreen

    with Store(results_db) as store:
        add_keyword_matches(store)
    db = ResultsDB(results_db)
    try:
        assert [v.title for v in db.views("run")][-1] == "Keywords"
        assert [v.title for v in db.views("document")][-1] == "Keywords"
        keywords = db.views("run")[-1]
        assert [(r["keyword"], r["page"]) for r in db.view(keywords, "site0001").rows] == [
            ("sourdough starter", "How to bake sourdough bread"),
            ("sourdough starter", SITE_DOCS[1][0]),
        ]
    finally:
        db.close()

    async def go():
        app = make_app(results_db)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("k")  # the runs screen: the Keywords tab of the run under the cursor
            await pilot.pause()
            assert isinstance(app.screen, RunViewsScreen) and app.screen.run_id == "site0001"
            assert "sourdough starter" in screen_text(app) and "best" in screen_text(app)
            await pilot.press("escape")
            app.open_document(1)
            await pilot.pause()
            titles = [str(tab.label) for tab in app.screen.query("Tab")]
            assert "Keywords" in titles

    run(go())

    with Store(results_db) as store:  # a database written before `revprompt match` existed
        store.execute("DROP TABLE keyword_matches")
    db = ResultsDB(results_db)
    try:
        assert "Keywords" not in [v.title for v in db.views()]
    finally:
        db.close()


# -- snapshots (80x24) ----------------------------------------------------------------------------------------


def test_snapshot_runs(results_db, snap_compare):
    assert snap_compare(make_app(results_db), terminal_size=SIZE)


def test_snapshot_documents(results_db, snap_compare):
    assert snap_compare(make_app(results_db), press=["enter"], terminal_size=SIZE)


def test_snapshot_candidates(results_db, snap_compare):
    assert snap_compare(make_app(results_db), press=["enter", "enter"], terminal_size=SIZE)


def test_snapshot_token_confidence(results_db, snap_compare):
    assert snap_compare(make_app(results_db), press=["enter", "enter", "enter"], terminal_size=SIZE)


def test_snapshot_key_phrases(results_db, snap_compare):
    assert snap_compare(make_app(results_db), press=["enter", "enter", "k"], terminal_size=SIZE)


def test_snapshot_heatmap(results_db, snap_compare):
    assert snap_compare(make_app(results_db), press=["enter", "enter", "h"], terminal_size=SIZE)


def test_snapshot_intent_map(results_db, snap_compare):
    assert snap_compare(make_app(results_db), press=["i"], terminal_size=SIZE)


def test_snapshot_paste(results_db, snap_compare):
    assert snap_compare(make_app(results_db), press=["p"], terminal_size=SIZE)


def test_snapshot_sql(results_db, snap_compare):
    async def query(pilot):
        from textual.widgets import TextArea

        await pilot.press("s")
        pilot.app.screen.query_one(TextArea).text = "SELECT run_id, status, command FROM runs ORDER BY run_id"
        await pilot.press("ctrl+r")
        # The table sizes its columns to the new rows on a later refresh: under load (a CI run) the snapshot
        # was once taken before it, with the columns of the query that opened the screen.
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()

    assert snap_compare(make_app(results_db), run_before=query, terminal_size=SIZE)
