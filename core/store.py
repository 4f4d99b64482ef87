"""The DuckDB store: one file holds runs, documents, candidates, their tokens and every analyzer's table.

Only this module talks to DuckDB: everything else (the batch, the TUI, datagen, analyzers) goes through a
`Store` method and never touches its connection (tests/test_architecture.py). Writes for one document (its row,
candidates, tokens, analyzer rows) go in one transaction, so a killed batch loses at most the documents in flight
and never leaves half a document.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from .errors import UserError
from .sandbox import error_line
from .storable import redact_text, redact_url, redact_value, safe_text, safe_value, stored_uri
from .types import Document, SweepResult, utcnow

DEFAULT_DB = "revprompt.duckdb"

# Forward migrations: index i moves the schema from version i to i+1. Never edit a shipped step; append.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE runs (
            run_id VARCHAR PRIMARY KEY,
            created_at TIMESTAMP NOT NULL,
            finished_at TIMESTAMP,
            command VARCHAR,
            target_key VARCHAR,
            model VARCHAR,
            config JSON,
            status VARCHAR NOT NULL DEFAULT 'running'
        )""",
        "CREATE SEQUENCE documents_seq START 1",
        """CREATE TABLE documents (
            doc_id BIGINT PRIMARY KEY DEFAULT nextval('documents_seq'),
            run_id VARCHAR NOT NULL,
            uri VARCHAR NOT NULL,
            source VARCHAR,
            title VARCHAR,
            description VARCHAR,
            text VARCHAR,
            status VARCHAR NOT NULL,
            error VARCHAR,
            http_status INTEGER,
            content_type VARCHAR,
            fetched_at TIMESTAMP,
            analyzed_at TIMESTAMP,
            n_input_tokens INTEGER,
            truncated BOOLEAN,
            seconds DOUBLE,
            meta JSON,
            UNIQUE (run_id, uri)
        )""",
        "CREATE SEQUENCE candidates_seq START 1",
        """CREATE TABLE candidates (
            candidate_id BIGINT PRIMARY KEY DEFAULT nextval('candidates_seq'),
            doc_id BIGINT NOT NULL,
            run_id VARCHAR NOT NULL,
            rank INTEGER NOT NULL,
            prompt VARCHAR NOT NULL,
            perplexity DOUBLE NOT NULL,
            mean_nll DOUBLE NOT NULL,
            confidence DOUBLE NOT NULL,
            top_k INTEGER,
            penalty_alpha DOUBLE,
            configs JSON,
            n_tokens INTEGER
        )""",
        """CREATE TABLE candidate_tokens (
            candidate_id BIGINT NOT NULL,
            position INTEGER NOT NULL,
            token_id INTEGER NOT NULL,
            token VARCHAR NOT NULL,
            prob DOUBLE NOT NULL,
            PRIMARY KEY (candidate_id, position)
        )""",
        "CREATE INDEX candidates_doc ON candidates(doc_id)",
    ],
    # 2: one page, one analysis. `canonical` is the page's <link rel="canonical"> (normalised); `content_hash`
    # a hash of its extracted text; a page whose canonical is another page, or whose text an earlier page of
    # the run already had, is stored with status 'duplicate' and `duplicate_of` = that page's uri, unanalysed.
    [
        "ALTER TABLE documents ADD COLUMN canonical VARCHAR",
        "ALTER TABLE documents ADD COLUMN content_hash VARCHAR",
        "ALTER TABLE documents ADD COLUMN duplicate_of VARCHAR",
    ],
    # 3: keyword-page matching and Search Console (issue #17; plugins/match.py, plugins/gsc.py, docs/queries.md).
    # `keyword_matches`: one row per keyword x scored page of a `revprompt match` (rank 1 = the lowest mean NLL of
    # the keyword given the page); `run_id` is the page's run. `gsc_rows`: Search Console rows, one per (query,
    # page) and imported file (no doc_id: a GSC page need not be analysed). `page_embeddings`: MiniLM vectors of
    # page texts, reused by the next match.
    [
        """CREATE TABLE keyword_matches (
            run_id VARCHAR,
            keyword VARCHAR NOT NULL,
            doc_id BIGINT,
            rank INTEGER NOT NULL,
            nll DOUBLE,
            cosine DOUBLE,
            cosine_rank INTEGER,
            gap DOUBLE,
            margin DOUBLE,
            answers BOOLEAN,
            cannibalisation BOOLEAN,
            gsc_page BOOLEAN,
            impressions DOUBLE,
            uri VARCHAR,
            match_id VARCHAR,
            model VARCHAR,
            created_at TIMESTAMP
        )""",
        "CREATE INDEX keyword_matches_keyword ON keyword_matches(keyword)",
        """CREATE TABLE gsc_rows (
            import_id VARCHAR NOT NULL,
            source_file VARCHAR,
            format VARCHAR NOT NULL,
            query VARCHAR,
            page VARCHAR,
            clicks DOUBLE,
            impressions DOUBLE,
            ctr DOUBLE,
            position DOUBLE,
            n_rows INTEGER,
            imported_at TIMESTAMP
        )""",
        """CREATE TABLE page_embeddings (
            doc_id BIGINT NOT NULL,
            model VARCHAR NOT NULL,
            text_hash VARCHAR NOT NULL,
            embedding FLOAT[]
        )""",
    ],
]
# What save_document moves from a Document's meta into columns of their own (see migration 2).
META_COLUMNS = ("canonical", "content_hash", "duplicate_of")
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass
class RunInfo:
    run_id: str
    created_at: object
    finished_at: object
    command: str | None
    target_key: str | None
    model: str | None
    config: dict
    status: str


def _one(cursor: duckdb.DuckDBPyConnection) -> tuple:
    """The row of a statement that always returns one (an aggregate, INSERT ... RETURNING)."""
    row = cursor.fetchone()
    assert row is not None, "the statement returned no row"
    return row


class Store:
    """A results database. `Store(path)` opens (creating and migrating) it; `read_only=True` for queries."""

    def __init__(self, path: str | Path = DEFAULT_DB, read_only: bool = False):
        self.path = str(path)
        self.read_only = read_only
        if read_only and self.path != ":memory:" and not Path(self.path).exists():
            raise UserError(f"no database at {self.path} (run `revprompt analyze` first, or pass --db)")
        try:
            self.con = duckdb.connect(self.path, read_only=read_only)
        except duckdb.IOException as exc:
            raise UserError(f"cannot open database {self.path}: {exc}") from None
        except duckdb.Error as exc:
            raise UserError(f"{self.path} is not a revprompt DuckDB database: {exc}") from None
        if not read_only:
            self.migrate()

    # -- schema -----------------------------------------------------------------------------------------
    def schema_version(self) -> int:
        has = _one(
            self.con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'")
        )[0]
        if not has:
            return 0
        row = _one(self.con.execute("SELECT max(version) FROM schema_version"))
        return int(row[0] or 0)

    def migrate(self) -> None:
        self._refuse_foreign_database()
        self.con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER, applied_at TIMESTAMP)")
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise UserError(
                f"{self.path} has schema version {current}, newer than this revprompt ({SCHEMA_VERSION}); upgrade"
            )
        for version in range(current, SCHEMA_VERSION):
            with self.transaction():
                for statement in MIGRATIONS[version]:
                    self.con.execute(statement)
                self.con.execute("INSERT INTO schema_version VALUES (?, ?)", [version + 1, utcnow()])

    def _refuse_foreign_database(self) -> None:
        """Someone else's DuckDB file (a `--db` typo, a shared analytics file) must not get revprompt's tables
        added to it: one with tables of its own and none of ours is refused before anything is written."""
        tables = {
            r[0]
            for r in self.con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database()"
            ).fetchall()
        }
        if tables and not tables & {"schema_version", "runs", "documents"}:
            self.con.close()
            shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
            raise UserError(
                f"{self.path} is a DuckDB database, but not revprompt's (it holds {shown}); "
                "give --db a new file or one revprompt made"
            )

    def ensure_tables(self, ddl: Iterable[str]) -> None:
        """Create a plugin's tables (idempotent `CREATE TABLE IF NOT EXISTS ...` statements)."""
        for statement in ddl:
            self.con.execute(statement)

    @contextmanager
    def transaction(self):
        """`with store.transaction():` the statements in the block commit together, or none of them."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        else:
            self.con.execute("COMMIT")

    def close(self) -> None:
        self.con.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- runs -------------------------------------------------------------------------------------------
    def create_run(self, command: str, model: str, config: dict | None = None, target_key: str | None = None) -> str:
        run_id = uuid.uuid4().hex[:12]
        self.con.execute(
            "INSERT INTO runs (run_id, created_at, command, target_key, model, config, status) "
            "VALUES (?, ?, ?, ?, ?, ?, 'running')",
            [
                run_id,
                utcnow(),
                safe_text(redact_text(command)),
                target_key,
                safe_text(model),
                json.dumps(safe_value(config or {})),
            ],
        )
        return run_id

    def get_run(self, run_id: str) -> RunInfo | None:
        row = self.con.execute(
            "SELECT run_id, created_at, finished_at, command, target_key, model, config, status "
            "FROM runs WHERE run_id = ?",
            [run_id],
        ).fetchone()
        if row is None:
            return None
        run_id, created_at, finished_at, command, target_key, model, config, status = row
        return RunInfo(
            run_id, created_at, finished_at, command, target_key, model, json.loads(config) if config else {}, status
        )

    def find_unfinished_run(self, target_key: str) -> RunInfo | None:
        """The latest run of the same targets that did not finish: re-running a command resumes it."""
        row = self.con.execute(
            "SELECT run_id FROM runs WHERE target_key = ? AND status <> 'finished' ORDER BY created_at DESC LIMIT 1",
            [target_key],
        ).fetchone()
        return self.get_run(row[0]) if row else None

    def reopen_run(self, run_id: str) -> None:
        """Mark a run being resumed as running again."""
        self.con.execute("UPDATE runs SET status = 'running' WHERE run_id = ?", [run_id])

    def finish_run(self, run_id: str, status: str = "finished") -> None:
        self.con.execute("UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?", [status, utcnow(), run_id])

    def add_run_cost(self, run_id: str, api: str, usd: float) -> float:
        """Add what a paid API (DataForSEO) charged to the run's `config.cost_usd.<api>`; the new total.
        A resumed run adds to what its earlier sessions spent."""
        run = self.get_run(run_id)
        if run is None:
            return 0.0
        stored = run.config.get("cost_usd")
        costs: dict = stored if isinstance(stored, dict) else {}
        costs[api] = round(float(costs.get(api) or 0.0) + float(usd), 6)
        self.con.execute(
            "UPDATE runs SET config = ? WHERE run_id = ?", [json.dumps({**run.config, "cost_usd": costs}), run_id]
        )
        return costs[api]

    def finished_uris(self, run_id: str, include_failed: bool = True) -> set[str]:
        statuses = ("done", "duplicate", "failed") if include_failed else ("done", "duplicate")
        rows = self.con.execute(
            f"SELECT uri FROM documents WHERE run_id = ? AND status IN ({','.join('?' * len(statuses))})",
            [run_id, *statuses],
        ).fetchall()
        return {r[0] for r in rows}

    # -- documents --------------------------------------------------------------------------------------
    def save_document(
        self,
        run_id: str,
        doc: Document,
        result: SweepResult | None = None,
        plugin_rows: Mapping[str, Sequence[dict]] | Callable[[], Mapping[str, Sequence[dict]]] | None = None,
    ) -> int:
        """Store one document with its candidates, tokens and analyzer rows, atomically.

        A document already stored for this run under the same URI is replaced (a retried failure), so a
        resumed run never duplicates. `plugin_rows` may be a callable: it runs after the candidates are
        inserted (so each Candidate has its candidate_id) and inside the same transaction. Returns the doc_id.

        Text goes in as `storable.py` allows: lone surrogates escaped, no password in the URI (DuckDB refuses
        the first, and the second has no business in a results file).
        """
        uri = stored_uri(doc.uri)
        meta = dict(doc.meta or {})
        columns = [
            safe_text(redact_url(meta.pop(k))) if isinstance(meta.get(k), str) else meta.pop(k, None)
            for k in META_COLUMNS
        ]
        with self.transaction():
            con = self.con
            old = con.execute("SELECT doc_id FROM documents WHERE run_id = ? AND uri = ?", [run_id, uri]).fetchall()
            for (old_id,) in old:
                self._delete_document(old_id)
            doc_id = con.execute(
                """INSERT INTO documents (run_id, uri, source, title, description, text, status, error, http_status,
                       content_type, fetched_at, analyzed_at, n_input_tokens, truncated, seconds, meta,
                       canonical, content_hash, duplicate_of)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING doc_id""",
                [
                    run_id,
                    uri,
                    safe_text(doc.source),
                    safe_text(doc.title),
                    safe_text(doc.description),
                    safe_text(doc.text),
                    doc.status,
                    safe_text(redact_text(doc.error)),
                    doc.http_status,
                    safe_text(doc.content_type),
                    doc.fetched_at,
                    utcnow() if result else None,
                    result.n_input_tokens if result else None,
                    result.truncated if result else None,
                    result.seconds if result else None,
                    json.dumps(_stored_meta(meta), default=str),
                    *columns,
                ],
            ).fetchall()[0][0]  # RETURNING: one row
            if result is not None:
                self._insert_candidates(run_id, doc_id, result)
            if callable(plugin_rows):
                plugin_rows = plugin_rows()
            for table, rows in (plugin_rows or {}).items():
                self.insert_rows(table, [{**r, "doc_id": r.get("doc_id", doc_id)} for r in rows])
        return doc_id

    def _insert_candidates(self, run_id: str, doc_id: int, result: SweepResult) -> None:
        for cand in result.candidates:
            cand_id = self.con.execute(
                """INSERT INTO candidates (doc_id, run_id, rank, prompt, perplexity, mean_nll, confidence, top_k,
                       penalty_alpha, configs, n_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   RETURNING candidate_id""",
                [
                    doc_id,
                    run_id,
                    cand.rank,
                    cand.prompt,
                    cand.perplexity,
                    cand.mean_nll,
                    cand.confidence,
                    cand.top_k,
                    cand.penalty_alpha,
                    json.dumps([c.as_dict() for c in cand.configs]),
                    len(cand.token_probs),
                ],
            ).fetchall()[0][0]  # RETURNING: one row
            cand.candidate_id = cand_id  # analyzers key their rows on it
            rows = [
                (cand_id, i, int(tid), tok, float(p))
                for i, (tid, tok, p) in enumerate(zip(cand.token_ids, cand.tokens, cand.token_probs))
            ]
            if rows:
                self.con.executemany("INSERT INTO candidate_tokens VALUES (?, ?, ?, ?, ?)", rows)

    def _delete_document(self, doc_id: int) -> None:
        self.con.execute(
            "DELETE FROM candidate_tokens WHERE candidate_id IN (SELECT candidate_id FROM candidates WHERE doc_id = ?)",
            [doc_id],
        )
        self.con.execute("DELETE FROM candidates WHERE doc_id = ?", [doc_id])
        for table in self.tables_with_column("doc_id", exclude={"documents", "candidates"}):
            self.con.execute(f'DELETE FROM "{table}" WHERE doc_id = ?', [doc_id])
        self.con.execute("DELETE FROM documents WHERE doc_id = ?", [doc_id])

    def tables_with_column(self, column: str, exclude: Set[str] = frozenset()) -> list[str]:
        rows = self.con.execute(
            "SELECT DISTINCT table_name FROM information_schema.columns WHERE column_name = ? "
            "AND table_schema = 'main'",
            [column],
        ).fetchall()
        return sorted(r[0] for r in rows if r[0] not in exclude)

    def insert_rows(self, table: str, rows: Sequence[dict]) -> None:
        if not rows:
            return
        columns = list(rows[0].keys())
        placeholders = ", ".join("?" * len(columns))
        cols = ", ".join(f'"{c}"' for c in columns)
        self.con.executemany(
            f'INSERT INTO "{table}" ({cols}) VALUES ({placeholders})',
            [[r.get(c) for c in columns] for r in rows],
        )

    # -- reading ----------------------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence | dict | None = None) -> tuple[list[str], list[tuple]]:
        try:
            cur = self.con.execute(sql, params or [])
        except duckdb.Error as exc:
            raise UserError(error_line(exc)) from None
        if cur.description is None:
            return [], []
        return [d[0] for d in cur.description], cur.fetchall()

    def execute(self, sql: str, params: Sequence | dict | None = None) -> list[tuple]:
        """Run one statement and return its rows (a write without RETURNING returns DuckDB's count row).

        For code that owns its tables (datagen, analyzers): DuckDB's errors pass through as they are, where
        `query` turns them into a one-line UserError for SQL a person typed."""
        return self.con.execute(sql, params or []).fetchall()

    def execute_many(self, sql: str, rows: Sequence[Sequence]) -> None:
        """One statement run for each parameter row (`executemany`)."""
        self.con.executemany(sql, rows)

    def arrow(self, sql: str, params: Sequence | None = None):
        """The rows of a query as one Arrow table (for Parquet export)."""
        return self.con.execute(sql, params or []).to_arrow_table()

    def iter_rows(self, sql: str, params: Sequence | None = None, chunk: int = 5000) -> Iterator[tuple]:
        """The rows of a query, fetched `chunk` at a time on a cursor of their own (an export of 100K rows
        never holds them all), so other statements may run while they are read."""
        cur = self.con.cursor()
        try:
            cur.execute(sql, params or [])
            while rows := cur.fetchmany(chunk):
                yield from rows
        finally:
            cur.close()

    @contextmanager
    def registered(self, name: str, data) -> Iterator[None]:
        """`data` (an Arrow table, a pandas or polars frame) readable as the view `name` inside the block:
        a set-based INSERT ... SELECT from it is far faster than rows inserted one by one."""
        self.con.register(name, data)
        try:
            yield
        finally:
            self.con.unregister(name)

    def has_table(self, name: str) -> bool:
        """Whether the main schema holds a table (or view) `name`."""
        row = _one(
            self.con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND table_schema = 'main'", [name]
            )
        )
        return bool(row[0])

    def table_columns(self, table: str) -> list[str]:
        """The columns of `table` in order (none when there is no such table)."""
        rows = self.con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND table_schema = 'main' "
            "ORDER BY ordinal_position",
            [table],
        ).fetchall()
        return [r[0] for r in rows]

    # -- SQL a person typed (core/sandbox.py) -----------------------------------------------------------
    def lock_down(self, writable: Sequence[str | Path] = ()) -> None:
        """Lock this (read-only) connection down for typed SQL: no other file, no extension, no settings."""
        from . import sandbox

        sandbox.lock_down(self.con, list(writable))

    def one_statement(self, sql: str | None, allowed: frozenset[str] | None = None) -> str:
        """The text of the single statement in `sql` (of a kind in `allowed`), or a one-line UserError."""
        from . import sandbox

        return sandbox.one_statement(self.con, sql, sandbox.READ_STATEMENTS if allowed is None else allowed)

    def run_one(self, sql: str | None, limit: int | None = None) -> tuple[list[str], list[tuple], int]:
        """Columns, rows (at most `limit`) and the total row count of the one read statement in `sql`; anything
        else is refused with a one-line UserError (core/sandbox.py)."""
        from . import sandbox

        cur = sandbox.execute(self.con, sql)
        if cur.description is None:
            return [], [], 0
        columns = [d[0] for d in cur.description]
        if limit is None:
            rows = cur.fetchall()
            return columns, rows, len(rows)
        rows = cur.fetchmany(limit)
        total = len(rows)
        if total == limit:
            total += len(cur.fetchall())
        return columns, rows, total

    def documents(self, run_id: str | None = None) -> list[dict]:
        where, params = ("WHERE run_id = ?", [run_id]) if run_id else ("", [])
        cols, rows = self.query(f"SELECT * FROM documents {where} ORDER BY doc_id", params)
        return [dict(zip(cols, r)) for r in rows]

    def candidates(self, doc_id: int) -> list[dict]:
        cols, rows = self.query("SELECT * FROM candidates WHERE doc_id = ? ORDER BY rank", [doc_id])
        return [dict(zip(cols, r)) for r in rows]

    def candidate_tokens(self, candidate_id: int) -> list[dict]:
        cols, rows = self.query(
            "SELECT * FROM candidate_tokens WHERE candidate_id = ? ORDER BY position", [candidate_id]
        )
        return [dict(zip(cols, r)) for r in rows]


def _stored_meta(meta: dict | None) -> dict:
    """A document's meta as stored: storable text, and every URL in it (a redirect's final URL, a crawled
    page's links, nested ones too) without credentials: no user info, credential query values as *** (see
    storable.py). The crawl never needs them back: it keeps a start URL's user info out of its URLs and sends
    it as an Authorization header, and re-reads a page whose stored links lost a secret (crawl.py)."""
    return redact_value(safe_value(meta or {}))


def open_read_only(path: str | Path) -> Store:
    return Store(path, read_only=True)


def open_sandbox(path: str | Path, write_to: str | Path | None = None) -> Store:
    """Read-only and locked down for SQL a person typed (`revprompt sql`, `export`, the TUI): see core/sandbox.py."""
    from . import sandbox

    return sandbox.open_sandbox(path, write_to=write_to)
