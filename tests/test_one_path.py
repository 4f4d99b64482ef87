"""One way in for every document: a text pasted in the TUI and the same text piped to `revprompt analyze -`
go through the same batch (core/batch.py) and the same save (core/analyzers.py `save_analysed`), so they are
stored under the same run key with the same rows."""

from __future__ import annotations

from click.testing import CliRunner

from revprompt.core.store import Store

TEXT = "Sourdough needs flour, water, salt and a lively starter.\nMix, fold, rest overnight and bake hot."
NEW_TOKENS = "6"  # short prompts keep the tiny model quick; both paths are given the same setting
# Ids and clocks differ between two runs of the same text; everything else must not.
VOLATILE = {"doc_id", "run_id", "candidate_id", "fetched_at", "analyzed_at", "created_at", "finished_at", "seconds"}
# Not document rows: the run itself, the run-level analysis (the paste leaves it out), the migrations applied.
SKIP = {"runs", "intent_clusters", "cannibalisation_pairs", "schema_version"}


def stored_rows(db: str) -> dict[str, list[tuple]]:
    """Every table's rows, volatile columns left out, in a stable order."""
    with Store(db) as store:
        _, tables = store.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'")
        out = {}
        for (table,) in tables:
            if table in SKIP or table.startswith("_"):
                continue
            _, cols = store.query(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                "AND table_schema = 'main' ORDER BY ordinal_position",
                [table],
            )
            keep = [c for (c,) in cols if c not in VOLATILE]
            if not keep:
                continue
            _, rows = store.query(f"SELECT {', '.join(map(repr_ident, keep))} FROM {repr_ident(table)}")
            out[table] = sorted(rows, key=repr)
        return out


def repr_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def run_key(db: str) -> str:
    with Store(db) as store:
        _, rows = store.query("SELECT target_key FROM runs")
    assert len(rows) == 1
    return rows[0][0]


def test_pasted_text_and_analyze_stdin_store_the_same_rows(tiny_model_dir, tmp_path):
    from revprompt.core.analyze_command import engine_description
    from revprompt.core.cli import cli
    from revprompt.core.engine import Engine
    from revprompt.tui.app import RevpromptApp

    cli_db, tui_db = str(tmp_path / "cli.duckdb"), str(tmp_path / "tui.duckdb")
    out = CliRunner().invoke(
        cli,
        [
            "analyze",
            "-",
            "--model",
            tiny_model_dir,
            "--db",
            cli_db,
            "--max-new-tokens",
            NEW_TOKENS,
            "--dtype",
            "float32",
            "--device",
            "cpu",
        ],
        input=TEXT,
    )
    assert out.exit_code == 0, out.output

    Store(tui_db).close()  # the TUI opens an existing results database
    app = RevpromptApp(
        tui_db,
        engine_factory=lambda: Engine.load(
            tiny_model_dir, dtype="float32", device="cpu", max_new_tokens=int(NEW_TOKENS)
        ),
        engine_description=engine_description(tiny_model_dir, "float32", max_new_tokens=int(NEW_TOKENS)),
    )
    try:
        # What the paste screen does: the sweep in its worker, then the save (a batch over the text source).
        engine = app.get_engine()
        run_id, doc_id = app.db.save_paste(
            TEXT, engine.sweep(TEXT), description=app.engine_description, analyzers=app.analyzers, engine=engine
        )
    finally:
        app.db.close()

    assert run_key(tui_db) == run_key(cli_db)
    cli_rows, tui_rows = stored_rows(cli_db), stored_rows(tui_db)
    assert cli_rows["documents"] and cli_rows["candidates"]
    assert {"key_phrases", "word_frequencies"} <= set(cli_rows)  # the analyzers ran on both paths
    assert tui_rows == cli_rows
