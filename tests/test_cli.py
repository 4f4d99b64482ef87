"""The CLI end to end on a tiny saved model: analyze stores what it prints; bad input is one line, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

TEXT = "Sourdough needs flour, water, salt and a lively starter. Mix, fold, rest overnight and bake hot."


def run_cli(*args, stdin=None, env_extra=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "revprompt", *args], input=stdin, capture_output=True, text=True, env=env, timeout=600
    )


def test_analyze_prints_and_stores(tiny_model_dir, db_path):
    out = run_cli(
        "analyze", TEXT, "--model", tiny_model_dir, "--db", db_path, "--max-new-tokens", "5", "--json", "--no-plugins"
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["candidates"] and result["candidates"][0]["rank"] == 1
    stored = run_cli("sql", "SELECT count(*) AS n FROM candidates", "--db", db_path, "--json")
    assert stored.returncode == 0, stored.stderr
    assert json.loads(stored.stdout)["n"] == len(result["candidates"])
    docs = run_cli("sql", "SELECT text, status FROM documents", "--db", db_path, "--json")
    assert json.loads(docs.stdout) == {"text": TEXT, "status": "done"}


def test_the_fast_exit_runs_atexit_handlers_and_flushes_what_was_printed(tmp_path):
    """core/fast_exit.py: the process ends with the code given, after the atexit handlers and with stdout and
    stderr flushed (a pipe is block-buffered, so an unflushed line would be lost)."""
    script = (
        "import atexit, sys\n"
        "from revprompt.core import fast_exit\n"
        "atexit.register(lambda: print('atexit ran', file=sys.stderr))\n"
        "print('candidates', end='')\n"
        "fast_exit.exit_now(3)\n"
        "print('never')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 3 and out.stdout == "candidates" and out.stderr.strip() == "atexit ran"


def test_analyze_ends_through_the_fast_exit_with_its_store_closed(tiny_model_dir, db_path, monkeypatch):
    """analyze asks for the fast exit (the entry point takes it; main() in-process does not), and what it
    printed and stored is all there: the database was closed (no write-ahead log left) before the process ended."""
    from revprompt.core import fast_exit

    out = run_cli("analyze", TEXT, "--model", tiny_model_dir, "--db", db_path, "--max-new-tokens", "4", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["candidates"]
    assert not os.path.exists(db_path + ".wal")
    stored = run_cli("sql", "SELECT status FROM documents", "--db", db_path, "--json")
    assert json.loads(stored.stdout) == {"status": "done"}

    from revprompt.core.cli import main

    monkeypatch.setattr(fast_exit, "_requested", False)

    main(["analyze", TEXT, "--model", tiny_model_dir, "--db", db_path, "--max-new-tokens", "3", "--no-plugins"])
    assert fast_exit.requested()  # asked for, and this process goes on: only `entry` acts on it


def test_analyze_stdin_table_output(tiny_model_dir, db_path):
    out = run_cli(
        "analyze", "-", "--model", tiny_model_dir, "--db", db_path, "--max-new-tokens", "4", "--no-plugins", stdin=TEXT
    )
    assert out.returncode == 0, out.stderr
    assert "perplexity" in out.stdout


@pytest.mark.parametrize("arg,stdin", [("   ", None), ("-", "\n\t \n"), ("-", "bin\x00ary")])
def test_bad_input_is_one_line_exit_2(db_path, arg, stdin):
    out = run_cli("analyze", arg, "--db", db_path, stdin=stdin)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().startswith("revprompt: error:") and len(out.stderr.strip().splitlines()) == 1


def test_binary_file_is_one_line_exit_2(tmp_path, db_path):
    f = tmp_path / "image.txt"
    f.write_bytes(b"\x89PNG\x00\x00\x01binary")
    out = run_cli("analyze", str(f), "--db", db_path)
    assert out.returncode == 2 and "binary" in out.stderr and "Traceback" not in out.stderr


def test_sql_is_read_only_and_errors_are_one_line(tiny_model_dir, db_path):
    assert (
        run_cli(
            "analyze", TEXT, "--model", tiny_model_dir, "--db", db_path, "--max-new-tokens", "3", "--no-plugins"
        ).returncode
        == 0
    )
    out = run_cli("sql", "DELETE FROM documents", "--db", db_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    out = run_cli("sql", "SELECT nope FROM nowhere", "--db", db_path)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    out = run_cli("sql", "SELECT 1", "--db", db_path + ".missing")
    assert out.returncode == 2 and "no database" in out.stderr


def test_unknown_model_is_a_clear_error(db_path):
    out = run_cli(
        "analyze", TEXT, "--model", "no-such-org/no-such-model", "--db", db_path, env_extra={"HF_HUB_OFFLINE": "1"}
    )
    assert out.returncode == 1 and "cannot load model" in out.stderr and "Traceback" not in out.stderr
