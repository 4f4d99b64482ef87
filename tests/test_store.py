"""The DuckDB store: schema and migrations, atomic document writes, replace-on-retry, read-only queries."""

from __future__ import annotations

import duckdb
import pytest

from revprompt.core.errors import UserError
from revprompt.core.store import SCHEMA_VERSION, Store
from revprompt.core.types import Candidate, DecodeConfig, Document, SweepResult


def _result(prompts=("What is X?", "Explain X")):
    cands = [
        Candidate(
            prompt=p,
            token_ids=[10 + i, 1],
            tokens=[p, "<eos>"],
            token_probs=[0.5, 0.9],
            perplexity=1.5 + i,
            mean_nll=0.4 + i,
            configs=[DecodeConfig(4, 0.2)],
            rank=i + 1,
        )
        for i, p in enumerate(prompts)
    ]
    return SweepResult(cands, n_input_tokens=42, truncated=False, seconds=0.1)


def test_new_database_is_migrated(db_path):
    with Store(db_path) as store:
        assert store.schema_version() == SCHEMA_VERSION
    with Store(db_path) as store:  # reopening does not re-run migrations
        assert store.query("SELECT count(*) FROM schema_version")[1][0][0] == SCHEMA_VERSION


def test_document_with_candidates_and_tokens(db_path):
    with Store(db_path) as store:
        run = store.create_run("analyze x", "tiny")
        doc_id = store.save_document(run, Document(uri="text:1", text="x", status="done"), _result())
        cands = store.candidates(doc_id)
        assert [c["prompt"] for c in cands] == ["What is X?", "Explain X"]
        assert store.candidate_tokens(cands[0]["candidate_id"])[1]["prob"] == pytest.approx(0.9)


def test_resaving_a_uri_replaces_it(db_path):
    with Store(db_path) as store:
        run = store.create_run("analyze", "tiny")
        store.save_document(run, Document(uri="u", status="failed", error="HTTP 500"))
        store.save_document(run, Document(uri="u", text="t", status="done"), _result())
        docs = store.documents(run)
        assert len(docs) == 1 and docs[0]["status"] == "done"
        assert store.finished_uris(run) == {"u"}


def test_failed_plugin_rows_roll_back_the_whole_document(db_path):
    with Store(db_path) as store:
        run = store.create_run("analyze", "tiny")
        with pytest.raises(duckdb.Error):
            store.save_document(
                run, Document(uri="u", text="t", status="done"), _result(), plugin_rows={"no_such_table": [{"x": 1}]}
            )
        assert store.documents(run) == []
        assert store.query("SELECT count(*) FROM candidates")[1][0][0] == 0


def test_read_only_store_rejects_writes_and_missing_files(db_path, tmp_path):
    Store(db_path).close()
    with Store(db_path, read_only=True) as store:
        with pytest.raises(UserError):
            store.query("DELETE FROM runs")
    with pytest.raises(UserError):
        Store(str(tmp_path / "missing.duckdb"), read_only=True)


def test_newer_schema_is_refused(db_path):
    with Store(db_path) as store:
        store.con.execute("INSERT INTO schema_version VALUES (?, now())", [SCHEMA_VERSION + 5])
    with pytest.raises(UserError, match="newer"):
        Store(db_path)
