"""`revprompt export`: tables and queries to Parquet / CSV / JSON Lines, read back with polars."""

from __future__ import annotations

import json

import polars as pl
import pytest

from revprompt.core.cli import main
from revprompt.core.store import Store
from revprompt.core.types import Document
from revprompt.plugins.export import export, format_for, table_names
from revprompt.plugins.key_phrases import KeyPhrasesAnalyzer
from revprompt.plugins.testing import make_result, run_batch
from revprompt.plugins.word_frequency import WordFrequencyAnalyzer

READERS = {"parquet": pl.read_parquet, "csv": pl.read_csv, "jsonl": pl.read_ndjson}


@pytest.fixture
def filled_db(db_path):
    items = [
        (Document("/bread", "..."), make_result(["how to bake sourdough bread", "sourdough bread recipe"])),
        (Document("/shoes", "..."), make_result(["best running shoes for flat feet", "running shoes"])),
        (Document("/broken", "").failed("HTTP 404"), None),
    ]
    with Store(db_path) as store:
        run_batch(store, items, [KeyPhrasesAnalyzer(), WordFrequencyAnalyzer()])
    return db_path


def run_cli(*args):
    """Run `revprompt ARGS`; returns the exit code (0 when main returns normally)."""
    try:
        main(list(args))
    except SystemExit as exc:
        return exc.code
    return 0


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_export_table_reads_back_in_polars(filled_db, tmp_path, capsys, fmt):
    out = tmp_path / f"words.{fmt}"
    assert run_cli("export", "--table", "word_frequencies", "--format", fmt, "-o", str(out), "--db", filled_db) == 0
    with Store(filled_db, read_only=True) as store:
        _, expected = store.query("SELECT candidate_id, word, count FROM word_frequencies ORDER BY ALL")
    frame = READERS[fmt](out)
    assert frame.height == len(expected) == 16  # 5 + 3 + 6 + 2 words
    got = sorted(frame.select("candidate_id", "word", "count").iter_rows())
    assert got == sorted(expected)
    assert f"wrote {len(expected)} rows" in capsys.readouterr().err


def test_export_query_infers_format_from_the_extension(filled_db, tmp_path):
    out = tmp_path / "phrases.parquet"
    query = (
        "SELECT d.uri, k.phrase, k.n_candidates, k.candidate_ids FROM key_phrases k JOIN documents d USING (doc_id) "
        "WHERE k.phrase_rank = 1 ORDER BY d.uri -- the best phrase of each page"
    )
    assert run_cli("export", "--query", query, "-o", str(out), "--db", filled_db) == 0
    frame = pl.read_parquet(out)
    assert frame["uri"].to_list() == ["/bread", "/shoes"]
    assert frame["phrase"].to_list() == ["sourdough bread", "running shoes"]
    assert frame["n_candidates"].to_list() == [2, 2]
    assert [len(ids) for ids in frame["candidate_ids"].to_list()] == [2, 2]


def test_json_columns_export_as_text_or_objects(filled_db, tmp_path):
    with Store(filled_db, read_only=True) as store:
        assert export(store, tmp_path / "runs.parquet", table="runs") == 1
        assert export(store, tmp_path / "runs.jsonl", table="runs") == 1
        assert export(store, tmp_path / "docs.csv", table="documents") == 3
    config = pl.read_parquet(tmp_path / "runs.parquet")["config"]
    assert config.dtype == pl.String and json.loads(config[0]) == {}
    line = json.loads((tmp_path / "runs.jsonl").read_text().splitlines()[0])
    assert line["config"] == {} and line["status"] == "finished"
    docs = pl.read_csv(tmp_path / "docs.csv")
    assert sorted(docs["status"].to_list()) == ["done", "done", "failed"]
    assert docs.filter(pl.col("status") == "failed")["error"].to_list() == ["HTTP 404"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--table", "nope"], "no table 'nope'"),
        (["--query", "SELECT * FROM nope"], "query failed"),
        (["--query", "DELETE FROM documents"], "refused (read-only): DELETE"),
        (["--table", "runs", "--query", "SELECT 1"], "exactly one of"),
        ([], "exactly one of"),
    ],
)
def test_bad_table_or_query_is_one_line_and_exit_2(filled_db, tmp_path, capsys, args, message):
    out = tmp_path / "x.csv"
    assert run_cli("export", *args, "-o", str(out), "--db", filled_db) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()
    with Store(filled_db, read_only=True) as store:
        assert store.query("SELECT count(*) FROM documents")[1] == [(3,)]


def test_missing_database_and_unknown_extension(tmp_path, filled_db, capsys):
    assert run_cli("export", "--table", "runs", "-o", str(tmp_path / "a.csv"), "--db", str(tmp_path / "no.duckdb")) == 2
    assert "no database" in capsys.readouterr().err
    assert run_cli("export", "--table", "runs", "-o", str(tmp_path / "a.xlsx"), "--db", filled_db) == 2
    assert "--format" in capsys.readouterr().err
    assert run_cli("export", "--table", "runs", "-o", str(tmp_path / "no" / "a.csv"), "--db", filled_db) == 2
    assert "does not exist" in capsys.readouterr().err


def test_helpers():
    assert format_for("x.PARQUET", None) == "parquet" and format_for("x.ndjson", None) == "jsonl"
    assert format_for("x.txt", "CSV") == "csv"
    assert table_names(KeyPhrasesAnalyzer.tables + WordFrequencyAnalyzer.tables) == ["key_phrases", "word_frequencies"]
