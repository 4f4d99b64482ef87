"""`revprompt sql`, `revprompt export` and the TUI's SQL screen run typed SQL in a sandbox (core/sandbox.py).

Each hostile statement below worked (or crashed with a traceback) before the sandbox: it wrote a file outside the
database, read one, changed a setting or ran a second statement. Now each is refused with one line, exit 2, and
nothing on disk changes. Real DuckDB files made here, the real CLI entry point (`main`, as the `revprompt`
script runs it) and one run of the installed script itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from revprompt.core.cli import main
from revprompt.core.errors import UserError
from revprompt.core.store import Store
from revprompt.core.types import Document
from revprompt.plugins.testing import make_result, run_batch

SECRET = "s3cret-token-line"


@pytest.fixture
def world(tmp_path):
    """A results database, a folder of 'private' files beside it, and another DuckDB file to ATTACH."""
    db = tmp_path / "results.duckdb"
    items = [
        (Document("/bread", "..."), make_result(["how to bake sourdough bread", "sourdough bread recipe"])),
        (Document("/shoes", "..."), make_result(["best running shoes", "running shoes"])),
    ]
    with Store(db) as store:
        run_batch(store, items, [])
    private = tmp_path / "private"
    private.mkdir()
    (private / "secret.csv").write_text(f"key\n{SECRET}\n")
    (private / "hidden-name.txt").write_text("x\n")
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).close()
    return {"db": str(db), "private": private, "other": str(other), "out": tmp_path / "out"}


def snapshot(root: Path) -> dict:
    """Every file and folder under `root` with its size and modification time: 'nothing was written'."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """`revprompt ARGS` in-process through the console script's entry point; (exit code, stdout, stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_refusal(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("revprompt: error:"), err
    for word in words:
        assert word in lines[0], err


def table_names(path: str) -> list[str]:
    con = duckdb.connect(path, read_only=True)
    try:
        return [r[0] for r in con.execute("SHOW TABLES").fetchall()]
    finally:
        con.close()


# -- revprompt sql ----------------------------------------------------------------------------------------------

HOSTILE_SQL = {
    "copy_to": "COPY documents TO '{out}/leak.csv'",
    "export_database": "EXPORT DATABASE '{out}/dump'",
    "attach": "ATTACH '{other}' AS o (READ_ONLY false)",
    "attach_and_write": "ATTACH '{other}' AS o (READ_ONLY false); CREATE TABLE o.pwned AS SELECT 1 AS x",
    "read_csv_outside": "SELECT * FROM read_csv('{private}/secret.csv')",
    "read_blob": "SELECT content FROM read_blob('{private}/secret.csv')",
    "glob": "SELECT file FROM glob('{private}/*')",
    "install": "SET extension_directory = '{out}/ext'; INSTALL '{private}/secret.csv'",
    "install_alone": "INSTALL '{private}/secret.csv'",
    "set": "SET threads = 1",
    "two_statements": "SELECT 1 AS a; SELECT 2 AS b",
}


@pytest.mark.parametrize("name", list(HOSTILE_SQL))
def test_sql_refuses_hostile_statements_and_writes_nothing(world, capsys, tmp_path, name):
    world["out"].mkdir()
    sql = HOSTILE_SQL[name].format(out=world["out"], other=world["other"], private=world["private"])
    before = snapshot(tmp_path)
    code, out, err = run_cli(capsys, "sql", sql, "--db", world["db"])
    assert snapshot(tmp_path) == before
    assert table_names(world["other"]) == []
    assert SECRET not in out and "hidden-name" not in out
    assert_one_line_refusal(code, err, "refused")


@pytest.mark.parametrize("sql", ["", "   ", " ; ", "/* only a comment */"])
def test_sql_empty_query_is_a_clear_message(world, capsys, sql):
    code, _, err = run_cli(capsys, "sql", sql, "--db", world["db"])
    assert_one_line_refusal(code, err, "the query is empty")


def test_sql_select_still_works(world, capsys):
    code, out, err = run_cli(capsys, "sql", "SELECT uri FROM documents ORDER BY uri;", "--db", world["db"], "--json")
    assert code == 0, err
    assert out.splitlines() == ['{"uri": "/bread"}', '{"uri": "/shoes"}']
    code, out, _ = run_cli(capsys, "sql", "PRAGMA show_tables", "--db", world["db"])
    assert code == 0 and "documents" in out


def test_installed_script_refuses_with_one_line(world, tmp_path):
    """The `revprompt` script itself (a real process): exit 2, one line, the file outside stays unwritten."""
    script = Path(sys.executable).with_name("revprompt")
    target = tmp_path / "leak.csv"
    proc = subprocess.run(
        [str(script), "sql", f"COPY runs TO '{target}'", "--db", world["db"]],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert_one_line_refusal(proc.returncode, proc.stderr, "refused")
    assert not target.exists()


# -- the connection itself (the second wall, without the statement check) ---------------------------------------


def test_the_connection_is_locked_even_past_the_statement_check(world):
    from revprompt.core.store import open_sandbox

    world["out"].mkdir()
    allowed = world["out"] / "allowed.csv"
    with open_sandbox(world["db"], write_to=allowed) as store:
        con = store.con
        for sql in (
            f"COPY runs TO '{world['out']}/leak.csv'",
            f"SELECT * FROM read_csv('{world['private']}/secret.csv')",
            f"ATTACH '{world['other']}' AS o (READ_ONLY false)",
            "LOAD httpfs",
        ):
            with pytest.raises(duckdb.PermissionException):
                con.execute(sql)
        for sql in ("SET enable_external_access = true", "RESET lock_configuration", "SET allowed_directories = ['/']"):
            with pytest.raises(duckdb.Error, match="locked"):
                con.execute(sql)
        with pytest.raises(duckdb.Error):
            con.execute("DELETE FROM runs")  # read-only file
        con.execute(f"COPY runs TO '{allowed}' (FORMAT csv)")  # the one file export may write
    assert sorted(p.name for p in world["out"].iterdir()) == ["allowed.csv"]
    with Store(world["db"]) as store:  # closing the sandbox ends its lock: a later read-write store works
        assert store.query("SELECT current_setting('enable_external_access')")[1] == [(True,)]


# -- revprompt export --------------------------------------------------------------------------------------------


def test_export_query_with_a_second_statement_is_refused(world, capsys, tmp_path):
    world["out"].mkdir()
    evil = world["out"] / "evil.csv"
    output = world["out"] / "result.csv"
    # Wrapped as `DESCRIBE (<query>)` and `COPY (<query>) TO ...`, this closed the parenthesis and ran a COPY.
    query = f"SELECT 1); COPY (SELECT 42 AS x) TO '{evil}'; SELECT (1"
    before = snapshot(tmp_path)
    code, _, err = run_cli(capsys, "export", "--query", query, "-o", str(output), "--db", world["db"])
    assert not evil.exists() and not output.exists()
    assert snapshot(tmp_path) == before
    assert_one_line_refusal(code, err, "query failed: Parser Error")  # on its own it is no statement at all


@pytest.mark.parametrize(
    "query, word",
    [
        ("SELECT 1 AS a; SELECT 2 AS b", "2 statements"),
        ("COPY runs TO '{out}/leak.csv'", "refused"),
        ("SELECT * FROM read_csv('{private}/secret.csv')", "refused"),
        ("SELECT file FROM glob('{private}/*')", "refused"),
    ],
)
def test_export_query_is_one_select_in_the_sandbox(world, capsys, tmp_path, query, word):
    world["out"].mkdir()
    output = world["out"] / "result.csv"
    before = snapshot(tmp_path)
    query = query.format(out=world["out"], private=world["private"])
    code, _, err = run_cli(capsys, "export", "--query", query, "-o", str(output), "--db", world["db"])
    assert not output.exists()
    assert snapshot(tmp_path) == before
    assert_one_line_refusal(code, err, word)


def test_export_to_a_file_still_works_and_overwrites(world, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative -o, as people type it
    code, _, err = run_cli(
        capsys, "export", "--query", "SELECT uri FROM documents ORDER BY uri; ", "-o", "pages.csv", "--db", world["db"]
    )
    assert code == 0, err
    assert (tmp_path / "pages.csv").read_text().splitlines() == ["uri", "/bread", "/shoes"]
    code, _, err = run_cli(capsys, "export", "--table", "candidates", "-o", "pages.csv", "--db", world["db"])
    assert code == 0 and "wrote 4 rows" in err, err
    assert (tmp_path / "pages.csv").read_text().splitlines()[0].startswith("candidate_id")
    assert not (tmp_path / "tmp_pages.csv").exists()


# -- the TUI's SQL screen (ResultsDB.query is what it runs) ------------------------------------------------------


def test_tui_sql_screen_uses_the_same_sandbox(world):
    from revprompt.tui.data import ResultsDB

    world["out"].mkdir()
    db = ResultsDB(world["db"])
    try:
        for name in (
            "copy_to",
            "attach_and_write",
            "read_csv_outside",
            "read_blob",
            "glob",
            "install_alone",
            "set",
            "two_statements",
            "export_database",
        ):
            sql = HOSTILE_SQL[name].format(out=world["out"], other=world["other"], private=world["private"])
            with pytest.raises(UserError, match="refused"):
                db.query(sql)
        with pytest.raises(UserError, match="the query is empty"):
            db.query("  ")
        # the rest of the TUI reads through the same connection: it must be locked down too
        with pytest.raises(duckdb.PermissionException):
            db.store.con.execute(f"SELECT * FROM read_csv('{world['private']}/secret.csv')")
        cols, rows, total = db.query("SELECT uri FROM documents ORDER BY uri")
        assert cols == ["uri"] and rows == [("/bread",), ("/shoes",)] and total == 2
        with db.writable() as store:  # saving a pasted result swaps in a read-write store, then the sandbox again
            store.query("CREATE TABLE IF NOT EXISTS scratch (a INT)")
        with pytest.raises(UserError, match="refused"):
            db.query(f"COPY runs TO '{world['out']}/leak.csv'")
        with pytest.raises(duckdb.PermissionException):
            db.store.con.execute(f"COPY runs TO '{world['out']}/leak.csv'")
    finally:
        db.close()
    assert list(world["out"].iterdir()) == []
    assert table_names(world["other"]) == []
