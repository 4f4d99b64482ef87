"""Analyzer views (core/views.py): what an analyzer declares about its read side, how it is read, and the TUI tab
a third-party analyzer gets through them (tests/fixtures/sample_plugin, found by its entry point)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from revprompt.core.store import Store
from revprompt.core.types import Document
from revprompt.core.views import View, analyzer_views, as_view, read_view, table_names
from revprompt.plugins.testing import make_result, run_batch

SIZE = (100, 30)

TABLE = "test_lengths"
DDL = f"CREATE TABLE IF NOT EXISTS {TABLE} (doc_id BIGINT, run_id VARCHAR, candidate_id BIGINT, n_words INTEGER)"


class Lengths:
    """A minimal analyzer (no base class) with a document view and a run view."""

    name = "lengths"
    tables = [DDL]

    def analyze_document(self, doc, result, run_id=None):
        return {
            TABLE: [
                {"run_id": run_id, "candidate_id": c.candidate_id, "n_words": len(c.prompt.split())}
                for c in result.candidates
            ]
        }

    def views(self):
        return [
            View(
                title="Lengths",
                key="l",
                sql=f"SELECT c.rank, t.n_words FROM {TABLE} t JOIN candidates c USING (candidate_id) "
                "WHERE t.doc_id = $doc_id ORDER BY c.rank",
                columns={"rank": "#", "n_words": "Words"},
            ),
            {
                "title": "Run lengths",
                "scope": "run",
                "sql": f"SELECT doc_id, sum(n_words) AS words FROM {TABLE} WHERE run_id = $run_id GROUP BY doc_id "
                "ORDER BY doc_id",
                "doc_column": "doc_id",
            },
        ]


@pytest.fixture
def store(db_path):
    with Store(db_path) as store:
        yield store


def analysed(store, analyzers) -> str:
    items = [
        (Document("page-1", "Apples."), make_result(["apples question", "what about apples?"])),
        (Document("page-2", "Pears."), make_result(["pears"])),
    ]
    return run_batch(store, items, analyzers=analyzers)


def test_an_analyzer_declares_its_views(store):
    (doc_view, run_view) = analyzer_views([Lengths()])
    assert doc_view.analyzer == "lengths" and doc_view.tables == (TABLE,)  # from the analyzer's DDL
    assert (doc_view.scope, doc_view.kind, doc_view.shortcut_label) == ("document", "table", "Lengths")
    assert run_view.scope == "run" and run_view.title == "Run lengths"  # a dict works as well
    assert analyzer_views([Lengths()], scope="run") == [run_view]
    assert table_names([DDL, "CREATE TABLE other (a INT)", "DELETE FROM x"]) == [TABLE, "other"]


def test_a_view_reads_its_rows_for_a_document_or_a_run(store):
    run_id = analysed(store, [Lengths()])
    doc_view, run_view = analyzer_views([Lengths()])
    data = read_view(store, doc_view, 1)
    assert (data.columns, data.headings, data.source) == (["rank", "n_words"], ["#", "Words"], "table")
    assert [(r["rank"], r["n_words"]) for r in data.rows] == [(1, 2), (2, 3)] and data.message() == ""
    data = read_view(store, run_view, run_id)
    assert data.columns == ["words"] and [(r["doc_id"], r["words"]) for r in data.rows] == [(1, 5), (2, 1)]
    assert read_view(store, doc_view, 999).message() == "no lengths for this document"


def test_a_view_before_its_analyzer_ran_or_over_a_table_of_another_shape(store):
    doc_view, _ = analyzer_views([Lengths()])
    data = read_view(store, doc_view, 1)
    assert data.missing and not data.rows and data.message() == "no lengths yet (run analysis plugins)"

    # no table yet, but the view counts from the candidates
    counted = View(
        title="Counted",
        sql=doc_view.sql,
        tables=(TABLE,),
        from_candidates=lambda cands: [{"rank": c["rank"], "n_words": 7} for c in cands],
    )
    data = read_view(store, counted, 1, candidates=[{"rank": 1, "prompt": "x"}])
    assert data.source == "candidates" and data.rows == [{"rank": 1, "n_words": 7}]

    # a table left by an older version of the plugin: its own columns are shown, and the problem said
    store.execute(f"CREATE TABLE {TABLE} (doc_id BIGINT, words INTEGER)")
    store.execute(f"INSERT INTO {TABLE} VALUES (1, 4)")
    data = read_view(store, doc_view, 1)
    assert data.source == "fallback" and data.columns == ["words"] and data.rows == [{"doc_id": 1, "words": 4}]
    assert data.message().startswith(f"cannot read {TABLE}: ")


def test_malformed_views_cost_only_their_analyzer(caplog):
    class Broken:
        name = "broken"
        tables = []

        def views(self):
            return [{"title": "x", "sql": "SELECT 1", "kind": "pie"}]

    with caplog.at_level(logging.WARNING, logger="revprompt.views"):
        views = analyzer_views([Broken(), Lengths()])
    assert [v.title for v in views] == ["Lengths", "Run lengths"]
    assert "broken" in caplog.text and "kind must be one of" in caplog.text
    with pytest.raises(ValueError, match="unknown view field"):
        as_view({"title": "x", "sql": "SELECT 1", "colour": "red"})
    with pytest.raises(ValueError, match="key must be one letter"):
        as_view(View(title="x", sql="SELECT 1", key="ctrl+x"))


def test_the_builtin_analyzers_declare_their_views():
    from revprompt.plugins.builtin import register_analyzers

    analyzers: list = []
    register_analyzers(analyzers.append)
    views = {(v.analyzer, v.title): v for v in analyzer_views(analyzers)}
    assert [k for k in views if k[0] in ("key_phrases", "word_frequency", "site_intent")] == [
        ("key_phrases", "Key phrases"),
        ("word_frequency", "Heatmap"),
        ("site_intent", "Intent map"),
        ("site_intent", "Cannibalisation"),
    ]
    assert views["word_frequency", "Heatmap"].kind == "matrix"
    assert views["site_intent", "Intent map"].scope == "run"


def test_the_heatmap_counts_words_as_the_word_frequency_plugin_does():
    """One definition of a word: the TUI's heatmap, counted from the prompts, agrees with the plugin's rows."""
    from revprompt.plugins.word_frequency import WordFrequencyAnalyzer, heatmap_rows

    result = make_result(["Don't bake gluten-free bread at home", "bake bread, bake!"])
    for i, cand in enumerate(result.candidates, 1):
        cand.candidate_id = i
    stored = WordFrequencyAnalyzer().analyze_document(Document("d", "t"), result)["word_frequencies"]
    from_table = {(r["word"], r["candidate_rank"]): r["count"] for r in stored if not r["stopword"]}
    counted = heatmap_rows([{"rank": c.rank, "prompt": c.prompt} for c in result.candidates])
    assert {(r["word"], r["candidate_rank"]): r["count"] for r in counted if r["word"]} == from_table
    assert from_table[("gluten-free", 1)] == 1 and from_table[("bake", 2)] == 2 and ("don't", 1) not in from_table


# -- the TUI: a third-party analyzer's tab --------------------------------------------------------------------


def test_a_third_party_view_is_a_tui_tab_with_its_rows(sample_on_path, db_path):
    """tests/fixtures/sample_plugin, found through its entry point, declares a view: the document screen shows it
    as a tab (shortcut l) with its rows, next to the built-ins', and the TUI names none of them."""
    from revprompt.core.analyzers import registered_analyzers
    from revprompt.tui.app import RevpromptApp
    from revprompt.tui.screens.document import DocumentScreen

    sample = [a for a in registered_analyzers() if a.name == "sample_prompt_lengths"]
    assert len(sample) == 1
    with Store(db_path) as store:
        run_id = analysed(store, sample)

    async def go():
        from textual.widgets import DataTable, TabbedContent

        app = RevpromptApp(db_path, analyzers=[])
        async with app.run_test(size=SIZE) as pilot:
            app.open_document(1)
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, DocumentScreen)
            tabs = screen.query_one(TabbedContent)
            labels = [tabs.get_tab(pane).label_text for pane in tabs.query("TabPane")]
            assert labels[0] == "Candidates" and labels[-1] == "Text"  # the views in between
            assert {"Key phrases", "Heatmap", "Prompt lengths"} <= set(labels)
            await pilot.press("l")
            assert tabs.get_tab(tabs.active).label_text == "Prompt lengths"
            table = screen.query_one(f"#{tabs.active} DataTable", DataTable)
            assert [str(c.label) for c in table.columns.values()] == ["#", "Chars", "Words", "Prompt"]
            assert [table.get_row_at(i) for i in range(table.row_count)] == [
                ["1", "15", "2", "apples question"],
                ["2", "18", "3", "what about apples?"],
            ]
            assert app.focused is table
            # the built-ins' tables were never made here: their tabs say so
            await pilot.press("k")
            assert "no key phrases yet (run analysis plugins)" in str(
                screen.query_one(f"#{tabs.active} .view-note").render()
            )

            # its run view: a tab of the run's analysis screen
            await pilot.press("escape")
            titles = [v.title for v in app.db.views("run")]
            app.open_run_views(run_id, titles.index("Prompt length summary"))
            await pilot.pause()
            tabs = app.screen.query_one(TabbedContent)
            assert tabs.get_tab(tabs.active).label_text == "Prompt length summary"
            table = app.screen.query_one(f"#{tabs.active} DataTable", DataTable)
            assert [table.get_row_at(i) for i in range(table.row_count)] == [["2", "12.667"]]

    asyncio.run(go())


def test_the_report_shows_a_third_party_run_view(sample_on_path, db_path):
    from revprompt.core.analyzers import registered_analyzers
    from revprompt.plugins.report import collect, render

    sample = [a for a in registered_analyzers() if a.name == "sample_prompt_lengths"]
    with Store(db_path) as store:
        run_id = analysed(store, sample)
        data = collect(store, run_id)
    assert data["views"] == [
        {
            "title": "Prompt length summary",
            "columns": ["Documents", "Mean characters"],
            "rows": [[2, 12.6667]],
            "total": 1,
        }
    ]
    assert '<h2>Prompt length summary</h2><div id="view-table-0">' in render(data)
