"""Parquet shards of a run's tables: `analyze --output-parquet DIR`, `sql --parquet DIR`, `import DIR` (issue 16).

Layout: one folder per table, each shard a file of rows exported from the run's DuckDB tables as they were
saved (the same columns and types: they are `SELECT *` of the tables):

    DIR/runs/<run_id>.parquet                      (rewritten at each flush: the run's row as it stands)
    DIR/documents/<run_id>-<first doc_id>-<n>.parquet
    DIR/candidates/..., DIR/candidate_tokens/..., DIR/<analyzer table>/...   (every table with a doc_id column)

DIR is a local folder or any URL pyarrow's filesystems understand (s3://bucket/prefix, gs://..., hdfs://...).
`ParquetSink` exports, every FLUSH_EVERY saved documents and at the end of the batch, the run's documents that no
shard holds yet, with their rows in every table: it reads them from the driver's store (the tables' own rows,
ids included) and hands them to its writer, which writes them (`write_tables`): the driver itself in a local
batch (`LocalShards`), the Ray actors in a `--ray` batch (core/ray_runner.py). A shard appears whole or not at
all (written under a temporary name, then moved), documents last, so a batch killed mid-shard leaves rows of
documents that the next flush exports again; readers drop those copies.

Readers (`load_into`) take one row per (run_id, uri), the one with the highest doc_id (a retried failure was
saved again under a new doc_id), and only that document's rows from the other tables, each row once; `import`
gives them fresh ids in the target file and skips documents it already holds, so importing twice adds nothing.
Run-level tables (intent clusters, cannibalisation pairs) are not exported: `import` leaves them to
`revprompt report`/a re-run of the run-level step.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Set
from pathlib import Path
from typing import Any, Protocol

import click

from .cli_options import db_option
from .errors import UserError

FLUSH_EVERY = 100
CORE_TABLES = ("documents", "candidates", "candidate_tokens")

#: (table, file name, Arrow rows): one file of a shard; a shard lists documents last (see the module's doc)
Shard = list[tuple[str, str, Any]]


def absolute(root: str) -> str:
    """`root` as a URL or an absolute path: a shard may be written by a Ray actor, whose working folder is not
    the driver's (on a cluster of several nodes, a local path is each node's own disk: use a URL there)."""
    return root if "://" in root else os.path.abspath(os.path.expanduser(root))


def _fs(root: str) -> tuple[Any, str]:
    """(pyarrow filesystem, path inside it) for a local folder or a URL."""
    from pyarrow import fs as pafs

    try:
        return pafs.FileSystem.from_uri(absolute(root))
    except Exception as exc:  # noqa: BLE001 -- an unknown scheme, missing credentials: one line
        raise UserError(f"cannot open {root} for Parquet: {exc}", 2) from None


def plain(rows: Any) -> Any:
    """`rows` with DuckDB's JSON columns (an Arrow extension type) as their text: what Parquet stores, and what
    a Ray actor unpickles without DuckDB's extension types registered."""
    import pyarrow as pa

    for i, f in enumerate(rows.schema):
        if isinstance(f.type, pa.ExtensionType):
            column = rows.column(i)
            text = pa.chunked_array([c.storage for c in column.chunks], type=f.type.storage_type)
            rows = rows.set_column(i, pa.field(f.name, f.type.storage_type, f.nullable), text)
    return rows


def write_tables(root: str, shard: Shard) -> None:
    """Write one shard's files under `root`, in order, each whole or not at all (written under a temporary name
    that readers skip, then moved into place). Runs where the shard is written: the driver of a local batch,
    a Ray actor of a `--ray` batch."""
    import pyarrow.parquet as pq

    fs, base = _fs(root)
    for table, name, rows in shard:
        folder = f"{base}/{table}"
        fs.create_dir(folder, recursive=True)
        tmp = f"{folder}/.{name}.tmp"
        pq.write_table(plain(rows), tmp, filesystem=fs)
        fs.move(tmp, f"{folder}/{name}")


def shard_doc_ids(root: str, run_id: str) -> set[int]:
    """doc_ids of `run_id` that the documents shards under `root` hold (a resumed run exports only the rest)."""
    fs, base = _fs(root)
    table = _read(fs, f"{base}/documents", columns=["doc_id", "run_id"])
    if table is None:
        return set()
    return {d for d, r in zip(table.column("doc_id").to_pylist(), table.column("run_id").to_pylist()) if r == run_id}


class ShardWriter(Protocol):
    """Where ParquetSink's shards are written: here (`LocalShards`), or by Ray actors (core/ray_runner.py)."""

    def accepting(self) -> bool:
        """Whether shards are taken now (a stopping Ray batch takes none: the resumed run exports them)."""
        ...

    def exported(self, run_id: str) -> set[int]:
        """doc_ids of the run that shards hold already."""
        ...

    def write(self, shard: Shard) -> None:
        """Write one shard, or queue it to be written (see `wait`)."""
        ...

    def wait(self) -> None:
        """Return once every shard taken so far is written (raises if one could not be)."""
        ...


class LocalShards:
    """The shards written by this process (a local batch's driver)."""

    def __init__(self, root: str):
        self.root = absolute(root)
        fs, base = _fs(self.root)
        fs.create_dir(base, recursive=True)

    def accepting(self) -> bool:
        return True

    def exported(self, run_id: str) -> set[int]:
        return shard_doc_ids(self.root, run_id)

    def write(self, shard: Shard) -> None:
        write_tables(self.root, shard)

    def wait(self) -> None:
        pass


class ParquetSink:
    """Exports what `store` saved for a run to Parquet shards under `root`. Wraps the batch's progress object
    (`progress`): every FLUSH_EVERY documents, and when the batch finishes or stops, it flushes.

    The rows are read from the store here (they are the tables' rows, ids included); `writer` writes them:
    this process by default (`LocalShards`), the actors of a Ray batch (`RayBatchRunner` sets its own)."""

    def __init__(self, store, root: str, progress=None, every: int = FLUSH_EVERY, writer: ShardWriter | None = None):
        self.store = store
        self.root = absolute(root)
        _fs(self.root)  # a URL no filesystem reads is refused before the run opens
        self.writer = writer
        self.progress = progress
        self.every = every
        self.pending = 0
        self.run_id: str | None = None
        self._exported: set[int] | None = None
        self.written = 0  # documents exported by this sink
        self.closed = False

    def _writer(self) -> ShardWriter:
        if self.writer is None:
            self.writer = LocalShards(self.root)
        return self.writer

    # -- the progress protocol (core/progress.py), passed through -------------------------------------------
    def start(self, total, skipped=0, estimated=False):
        if self.progress:
            self.progress.start(total, skipped=skipped, estimated=estimated)

    def skip(self, uri=None):
        if self.progress:
            self.progress.skip(uri)

    def advance(self, doc):
        if self.run_id is None:  # the document just saved tells which run this is
            rows = self.store.execute(
                "SELECT run_id FROM documents WHERE uri = ? ORDER BY doc_id DESC LIMIT 1", [doc.uri]
            )
            self.run_id = rows[0][0] if rows else None
        if self.progress:
            self.progress.advance(doc)
        self.pending += 1
        if self.pending >= self.every:
            self.flush()

    def finish(self):
        try:
            self.flush()
            self._writer().wait()
        finally:
            if self.progress:
                self.progress.finish()

    def close(self) -> None:
        """No more shards: a later `flush` writes nothing (a Ray batch closes its sink once its actors wrote the
        run's last rows, before they stop)."""
        self.closed = True

    # -- writing ----------------------------------------------------------------------------------------------
    def flush(self, run_id: str | None = None) -> int:
        """Export the run's documents that no shard holds yet, and the run's row; returns how many documents."""
        run_id = run_id or self.run_id
        if run_id is None or self.closed:
            return 0
        self.run_id, self.pending = run_id, 0
        store = self.store
        writer = self._writer()
        if not writer.accepting():
            return 0
        if self._exported is None:
            self._exported = writer.exported(run_id)
        ids = [
            r[0]
            for r in store.execute("SELECT doc_id FROM documents WHERE run_id = ? ORDER BY doc_id", [run_id])
            if r[0] not in self._exported
        ]
        shard: Shard = [("runs", f"{run_id}.parquet", store.arrow("SELECT * FROM runs WHERE run_id = ?", [run_id]))]
        if ids:
            import pyarrow as pa

            name = f"{run_id}-{ids[0]:012d}-{len(ids)}-{uuid.uuid4().hex[:6]}.parquet"
            chosen = "doc_id IN (SELECT doc_id FROM _export_ids)"
            with_doc_id = store.tables_with_column("doc_id", exclude={"documents"})  # before _export_ids is one
            with store.registered("_export_ids", pa.table({"doc_id": pa.array(ids, pa.int64())})):
                tables = {t: store.arrow(f'SELECT * FROM "{t}" WHERE {chosen}') for t in with_doc_id}
                tables["candidate_tokens"] = store.arrow(
                    f"SELECT t.* FROM candidate_tokens t JOIN candidates c USING (candidate_id) WHERE c.{chosen}"
                )
                shard += [(t, name, data) for t, data in tables.items() if data.num_rows]
                shard.append(("documents", name, store.arrow(f"SELECT * FROM documents WHERE {chosen}")))  # last
        writer.write(shard)
        if not ids:
            return 0
        self._exported.update(ids)
        self.written += len(ids)
        return len(ids)


def _read(fs, folder: str, columns: list[str] | None = None):
    """Every shard in `folder` as one Arrow table (None when there are none)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyarrow import fs as pafs

    info = fs.get_file_info(folder)
    if info.type != pafs.FileType.Directory:
        return None
    files = sorted(
        f.path
        for f in fs.get_file_info(pafs.FileSelector(folder))
        if f.type == pafs.FileType.File and f.path.endswith(".parquet") and not Path(f.path).name.startswith(".")
    )
    if not files:
        return None
    tables = [pq.read_table(f, filesystem=fs, columns=columns) for f in files]
    return pa.concat_tables(tables, promote_options="permissive")


def shard_tables(root: str) -> list[str]:
    from pyarrow import fs as pafs

    fs, base = _fs(root)
    if fs.get_file_info(base).type != pafs.FileType.Directory:
        raise UserError(f"no Parquet shards at {root} (write them with `revprompt analyze --output-parquet`)", 2)
    return sorted(
        Path(f.path).name for f in fs.get_file_info(pafs.FileSelector(base)) if f.type == pafs.FileType.Directory
    )


def load_into(store, root: str) -> dict[str, int]:
    """Add the shards under `root` to `store`: one document per (run_id, uri), fresh ids, rows of documents the
    store already holds skipped. Returns rows added per table."""
    fs, base = _fs(root)
    tables = shard_tables(root)
    if "documents" not in tables:
        raise UserError(f"no documents shards under {root}", 2)
    con = _Rows(store)
    added: dict[str, int] = {}
    registered = contextlib.ExitStack()

    def register(table: str) -> str | None:
        data = _read(fs, f"{base}/{table}")
        if data is None:
            return None
        name = f"_shard_{table}"
        registered.enter_context(store.registered(name, data))
        return name

    with registered:
        with store.transaction():
            runs = register("runs")
            if runs:
                before = con.execute("SELECT count(*) FROM runs").fetchone()[0]
                cols = _shared(con, "runs", runs)
                con.execute(
                    f"INSERT INTO runs ({cols}) SELECT {_prefixed(cols, 's')} FROM (SELECT DISTINCT ON "
                    f"(run_id) * FROM {runs} ORDER BY run_id, created_at DESC) s "
                    "WHERE run_id NOT IN (SELECT run_id FROM runs)"
                )
                added["runs"] = con.execute("SELECT count(*) FROM runs").fetchone()[0] - before
            docs = register("documents")
            assert docs is not None  # checked above: shard_tables lists it
            con.execute(f"""CREATE OR REPLACE TEMP TABLE _docmap AS
                SELECT doc_id AS old_id, nextval('documents_seq') AS new_id FROM (
                    SELECT DISTINCT ON (run_id, uri) * FROM {docs} ORDER BY run_id, uri, doc_id DESC) s
                WHERE NOT EXISTS (SELECT 1 FROM documents d WHERE d.run_id = s.run_id AND d.uri = s.uri)""")
            cols = _shared(con, "documents", docs, exclude={"doc_id"})
            con.execute(f"""INSERT INTO documents (doc_id, {cols})
                SELECT m.new_id, {_prefixed(cols, "s")} FROM (SELECT DISTINCT ON (doc_id) * FROM {docs}) s
                JOIN _docmap m ON m.old_id = s.doc_id""")
            added["documents"] = con.execute("SELECT count(*) FROM _docmap").fetchone()[0]
            cands = register("candidates") if "candidates" in tables else None
            con.execute("CREATE OR REPLACE TEMP TABLE _candmap (old_id BIGINT, new_id BIGINT)")
            if cands:
                con.execute(f"""INSERT INTO _candmap SELECT candidate_id, nextval('candidates_seq') FROM (
                    SELECT DISTINCT candidate_id FROM {cands} WHERE doc_id IN (SELECT old_id FROM _docmap))""")
                cols = _shared(con, "candidates", cands, exclude={"candidate_id", "doc_id"})
                con.execute(f"""INSERT INTO candidates (candidate_id, doc_id, {cols})
                    SELECT c.new_id, m.new_id, {_prefixed(cols, "s")}
                    FROM (SELECT DISTINCT ON (candidate_id) * FROM {cands}) s
                    JOIN _candmap c ON c.old_id = s.candidate_id JOIN _docmap m ON m.old_id = s.doc_id""")
                added["candidates"] = con.execute("SELECT count(*) FROM _candmap").fetchone()[0]
            tokens = register("candidate_tokens") if "candidate_tokens" in tables else None
            if tokens:
                cur = con.execute(f"""INSERT INTO candidate_tokens
                    SELECT c.new_id, s.position, s.token_id, s.token, s.prob
                    FROM (SELECT DISTINCT ON (candidate_id, position) * FROM {tokens}) s
                    JOIN _candmap c ON c.old_id = s.candidate_id""")
                added["candidate_tokens"] = cur.fetchone()[0]
            for table in tables:
                if table in ("runs", *CORE_TABLES):
                    continue
                src = register(table)
                if src is None:
                    continue
                con.execute(f'CREATE TABLE IF NOT EXISTS "{table}" AS SELECT * FROM {src} LIMIT 0')
                columns = _column_list(con, table)
                shard_cols = set(_column_list(con, src))
                picks = []
                for c in columns:
                    if c == "doc_id":
                        picks.append("m.new_id")
                    elif c == "candidate_id" and "candidate_id" in shard_cols:
                        picks.append("(SELECT new_id FROM _candmap WHERE old_id = s.candidate_id)")
                    elif c in shard_cols:
                        picks.append(f's."{c}"')
                    else:
                        picks.append("NULL")
                quoted = ", ".join(f'"{c}"' for c in columns)
                cur = con.execute(f"""INSERT INTO "{table}" ({quoted}) SELECT {", ".join(picks)}
                    FROM (SELECT DISTINCT * FROM {src}) s JOIN _docmap m ON m.old_id = s.doc_id""")
                added[table] = cur.fetchone()[0]
            con.execute("DROP TABLE IF EXISTS _docmap")
            con.execute("DROP TABLE IF EXISTS _candmap")
    return added


class _Rows:
    """`store.execute` spelled as a cursor (`execute(sql).fetchone()`), every result read to the end (DuckDB
    refuses new work on a connection while a result is unread, even an INSERT's row count)."""

    def __init__(self, store):
        self.store = store
        self.rows: list[tuple] = []

    def execute(self, sql: str, params=None) -> _Rows:
        self.rows = self.store.execute(sql, params or [])
        return self

    def fetchone(self):
        return self.rows[0] if self.rows else None

    def fetchall(self):
        return self.rows


def _column_list(con, table: str) -> list[str]:
    return [r[0] for r in con.execute(f'DESCRIBE "{table}"').fetchall()]


def _shared(con, table: str, source: str, exclude: Set[str] = frozenset()) -> str:
    """The columns `table` and the shards both have (shards of an older or newer schema still load)."""
    theirs = set(_column_list(con, source))
    return ", ".join(f'"{c}"' for c in _column_list(con, table) if c in theirs and c not in exclude)


def _prefixed(cols: str, alias: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in cols.split(", "))


def open_parquet_sandbox(root: str):
    """The shards under `root` in an in-memory database, locked down like `revprompt sql`'s results file."""
    from .store import Store

    store = Store(":memory:")
    try:
        load_into(store, root)
        store.lock_down([])
    except BaseException:
        store.close()
        raise
    return store


@click.command("import")
@click.argument("source")
@db_option()
def import_command(source, db):
    """Load the Parquet shards under SOURCE (a folder or URL written by `analyze --output-parquet`) into --db.

    One row per document (run, uri), new ids in --db; documents --db already holds are skipped, so importing
    the same shards twice adds nothing."""
    from .store import Store

    with Store(db) as store:
        added = load_into(store, source)
    click.echo("imported " + ", ".join(f"{n} {t}" for t, n in added.items()) + f" into {db}", err=True)
