"""The SQL sandbox behind `revprompt sql`, `revprompt export` and the TUI's SQL screen.

Why: these run SQL that a person typed or pasted against a results file, and DuckDB SQL does far more than read
tables: `COPY ... TO` and `EXPORT DATABASE` write files anywhere, `ATTACH` opens other databases read-write,
`read_csv`/`read_blob`/`glob` read any file, `INSTALL`/`LOAD` fetch and run code, `SET` can undo all of it, and a
`;` smuggles a second statement past a check of the first. So the sandbox has two walls, each enough on its own
for what we know of, together so a gap in one (a statement type or a DuckDB function we did not think of) still
meets the other:

1. The connection (`open_sandbox`, `lock_down`): the results file opened read-only, extension autoloading off,
   `enable_external_access = false` (no files, network, extensions or Python objects) except `allowed_paths`,
   which holds only `export`'s one output file, and then `lock_configuration = true`, so no SET, RESET or PRAGMA
   can lift any of it for the rest of the connection's life.
2. The text (`one_statement`): exactly one statement, split by DuckDB's own parser (not by us counting `;`), of
   a reading type; anything else is refused with one line before anything runs.

DuckDB's settings belong to the database instance, and one process shares one instance per file; the TUI and the
CLI therefore hold only the sandboxed connection while it is open (closing it ends the lock; see tui/data.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from .errors import UserError

if TYPE_CHECKING:
    from .store import Store

# Statement types that only read. A PRAGMA that changes a setting parses as SET and is refused; EXPLAIN ANALYZE of
# anything else still meets the read-only, no-external-access connection.
READ_STATEMENTS = frozenset({"SELECT", "EXPLAIN", "PRAGMA", "CALL"})
# What `export --query` accepts: it is wrapped in `COPY (...) TO`, so it must be a plain query.
QUERY_STATEMENTS = frozenset({"SELECT"})

EMPTY = 'the query is empty: give one SQL statement, e.g. "SELECT count(*) FROM documents"'


def writable_path(path: str | Path) -> Path:
    """The absolute form of an output file, as both `allowed_paths` and the `COPY ... TO` that writes it spell it."""
    return Path(path).resolve()


def lock_down(con: duckdb.DuckDBPyConnection, writable_files: Sequence[str | Path] = ()) -> None:
    """Close a connection around its database (and `writable_files`, which only `export` passes).

    `allowed_paths` can only be set once the database runs and before external access is switched off, and the
    lock must come last, hence this order. DuckDB's COPY writes over an existing file through `tmp_<name>` in
    the same folder and renames it, so that sibling is allowed too."""
    allowed: list[str] = []
    for file in writable_files:
        path = writable_path(file)
        allowed += [str(path), str(path.with_name("tmp_" + path.name))]
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET allowed_paths = ?", [allowed])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def open_sandbox(path: str | Path, write_to: str | Path | None = None) -> Store:
    """The results database at `path`, read-only and locked down; `write_to` is the one file it may write."""
    from .store import Store  # store imports this module for its error lines

    store = Store(path, read_only=True)
    try:
        store.lock_down([write_to] if write_to is not None else [])
    except BaseException:
        store.close()
        raise
    return store


def one_statement(con: duckdb.DuckDBPyConnection, sql: str | None, allowed: frozenset[str] = READ_STATEMENTS) -> str:
    """The text of the single statement in `sql`, or a one-line UserError saying why it is refused."""
    if sql is None or not sql.strip():
        raise UserError(EMPTY)
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise UserError(error_line(exc)) from None
    if not statements:  # only `;` or comments
        raise UserError(EMPTY)
    if len(statements) > 1:
        raise UserError(f"refused (read-only): {len(statements)} statements; give exactly one")
    kind = statements[0].type.name
    if kind not in allowed:
        only = ", ".join(sorted(allowed))
        raise UserError(f"refused (read-only): {kind} statements are not allowed here, only {only}")
    # DuckDB keeps a trailing `;` in the statement's text; `export` wraps the text in parentheses, so drop it.
    return statements[0].query.rstrip("; \t\r\n")


def execute(con: duckdb.DuckDBPyConnection, sql: str | None, allowed: frozenset[str] = READ_STATEMENTS):
    """Run the one statement in `sql` on a locked-down connection; returns the cursor to fetch from."""
    statement = one_statement(con, sql, allowed)
    try:
        return con.execute(statement)
    except duckdb.Error as exc:
        raise UserError(error_line(exc)) from None


def query(store: Store, sql: str | None) -> tuple[list[str], list[tuple]]:
    """Columns and rows of the one statement in `sql` (`revprompt sql`)."""
    columns, rows, _ = store.run_one(sql)
    return columns, rows


def error_line(exc: duckdb.Error) -> str:
    """One line for a failed query: a sandbox refusal says so, anything else is DuckDB's first line."""
    line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, duckdb.PermissionException):
        return f"refused (sandbox: only the results database can be read): {line}"
    if "configuration has been locked" in line:
        return f"refused (sandbox: settings are locked): {line}"
    return f"query failed: {line}"
