"""Export any table or query of a results database to Parquet, CSV or JSON Lines (through DuckDB's COPY)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import UserError
from ..core.sandbox import QUERY_STATEMENTS, writable_path
from ..core.views import table_names  # noqa: F401  (re-exported: one definition, in core)

if TYPE_CHECKING:
    from ..core.store import Store

FORMATS = {
    "parquet": "(FORMAT parquet)",
    "csv": "(FORMAT csv, HEADER true)",
    "jsonl": "(FORMAT json)",  # DuckDB writes newline-delimited JSON: one object a line
}
SUFFIXES = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


def format_for(path: str | Path, fmt: str | None) -> str:
    if fmt:
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise UserError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise UserError(f"cannot tell the format from {str(path)!r}: pass --format {'|'.join(FORMATS)}")
    return SUFFIXES[suffix]


def list_tables(store: Store) -> list[str]:
    _, rows = store.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY table_name"
    )
    return [r[0] for r in rows]


def _select_for(store: Store, table: str | None, query: str | None) -> str:
    if (table is None) == (query is None):
        raise UserError("give exactly one of --table NAME or --query SQL")
    if table is not None:
        tables = list_tables(store)
        if table not in tables:
            raise UserError(f"no table {table!r} in {store.path}; tables: {', '.join(tables) or '(none)'}")
        return 'SELECT * FROM "{}"'.format(table.replace('"', '""'))
    # One plain SELECT, split by DuckDB's parser: it is wrapped in `COPY (...) TO`, where a `;` or a
    # non-query would otherwise run a statement of its own.
    return store.one_statement(query, allowed=QUERY_STATEMENTS)


def export(
    store: Store, output: str | Path, fmt: str | None = None, table: str | None = None, query: str | None = None
) -> int:
    """Write `table` or the result of `query` to `output`; returns the number of rows written.

    JSON columns are written as text in Parquet and CSV (readers such as polars would otherwise see bytes)
    and as nested objects in JSON Lines. `revprompt export` passes a store from `open_sandbox(db, write_to=output)`,
    so the query can read only the database and write only `output`."""
    fmt = format_for(output, fmt)
    sql = _select_for(store, table, query)
    output = writable_path(output)  # the very spelling the sandbox's allowed_paths holds
    if not output.parent.exists():
        raise UserError(f"folder {str(output.parent)!r} does not exist")
    if output.is_dir():
        raise UserError(f"{str(output)!r} is a folder; give a file name")
    # DESCRIBE also checks that the query is one SELECT-like statement before anything is written.
    sql = f"{sql}\n"  # a trailing -- comment must not swallow the closing parenthesis
    columns, rows = store.query(f"DESCRIBE ({sql})")
    name_i, type_i = columns.index("column_name"), columns.index("column_type")
    json_cols = [r[name_i] for r in rows if str(r[type_i]).upper() == "JSON"]
    if json_cols and fmt != "jsonl":
        replace = ", ".join('CAST("{0}" AS VARCHAR) AS "{0}"'.format(c.replace('"', '""')) for c in json_cols)
        sql = f"SELECT * REPLACE ({replace}) FROM ({sql})"
    target = str(output).replace("'", "''")
    _, result = store.query(f"COPY ({sql}) TO '{target}' {FORMATS[fmt]}")
    if result and result[0] and isinstance(result[0][0], int):
        return int(result[0][0])
    _, count = store.query(f"SELECT count(*) FROM ({sql})")
    return int(count[0][0])
