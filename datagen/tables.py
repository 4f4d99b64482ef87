"""The datagen tables in the revprompt DuckDB file, and every read and write datagen makes to them.

    datagen_batches   one row per finished stage-1 call (category, batch_no): what resume skips
    datagen_prompts   stage-1 prompts, unique by normalised text (prompt_key)
    datagen_pairs     (prompt, response) pairs: stage-2 answers (prompt_id set) and imported pairs alike
    datagen_errors    rejected outputs and failed calls: what went wrong, never the rejected text itself
    datagen_batch_jobs  --batch jobs submitted to the Gemini Batch API: a re-run polls the unfinished ones

A stage-1 batch row and its prompts are written in one transaction, and each stage-2 answer in its own, so
a killed run leaves either all of a call's results or none: a re-run redoes exactly the missing calls.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from ..core.store import Store
from ..core.types import utcnow
from .dedup import pair_key, prompt_key

DDL = [
    """CREATE TABLE IF NOT EXISTS datagen_batches (
        category VARCHAR NOT NULL,
        batch_no INTEGER NOT NULL,
        topic VARCHAR,
        requested INTEGER NOT NULL,
        received INTEGER NOT NULL,
        added INTEGER NOT NULL,
        model VARCHAR,
        input_tokens INTEGER,
        output_tokens INTEGER,
        attempts INTEGER,
        created_at TIMESTAMP NOT NULL,
        PRIMARY KEY (category, batch_no)
    )""",
    "CREATE SEQUENCE IF NOT EXISTS datagen_prompts_seq START 1",
    """CREATE TABLE IF NOT EXISTS datagen_prompts (
        prompt_id BIGINT PRIMARY KEY DEFAULT nextval('datagen_prompts_seq'),
        prompt VARCHAR NOT NULL,
        prompt_key VARCHAR NOT NULL UNIQUE,
        category VARCHAR,
        batch_no INTEGER,
        source VARCHAR NOT NULL,
        model VARCHAR,
        created_at TIMESTAMP NOT NULL
    )""",
    "CREATE SEQUENCE IF NOT EXISTS datagen_pairs_seq START 1",
    """CREATE TABLE IF NOT EXISTS datagen_pairs (
        pair_id BIGINT PRIMARY KEY DEFAULT nextval('datagen_pairs_seq'),
        prompt_id BIGINT UNIQUE,
        prompt VARCHAR NOT NULL,
        response VARCHAR NOT NULL,
        pair_key VARCHAR NOT NULL UNIQUE,
        source VARCHAR NOT NULL,
        category VARCHAR,
        model VARCHAR,
        finish_reason VARCHAR,
        input_tokens INTEGER,
        output_tokens INTEGER,
        created_at TIMESTAMP NOT NULL,
        meta JSON
    )""",
    "CREATE SEQUENCE IF NOT EXISTS datagen_errors_seq START 1",
    """CREATE TABLE IF NOT EXISTS datagen_errors (
        error_id BIGINT PRIMARY KEY DEFAULT nextval('datagen_errors_seq'),
        logged_at TIMESTAMP NOT NULL,
        stage VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        detail VARCHAR,
        category VARCHAR,
        batch_no INTEGER,
        prompt_id BIGINT,
        permanent BOOLEAN NOT NULL DEFAULT FALSE
    )""",
    # One row per Batch API job, written as soon as the job exists, so a killed or interrupted run is picked up
    # by the next one instead of paying for the same requests twice. `keys` lists the job's requests in order.
    """CREATE TABLE IF NOT EXISTS datagen_batch_jobs (
        name VARCHAR PRIMARY KEY,
        stage VARCHAR NOT NULL,
        model VARCHAR,
        keys JSON NOT NULL,
        state VARCHAR,
        created_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP
    )""",
]

# A pair whose answer stopped for another reason (MAX_TOKENS, SAFETY, ...) is kept but not exported by default.
COMPLETE_FINISH = "STOP"


@dataclass
class PendingPrompt:
    prompt_id: int
    prompt: str
    category: str | None


@dataclass
class Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None


class DatagenTables:
    """Datagen's view of a `Store`: creates its tables on first use."""

    def __init__(self, store: Store):
        self.store = store
        store.ensure_tables(DDL)

    # -- stage 1: prompts -------------------------------------------------------------------------------
    def done_batches(self, category: str) -> dict[int, int]:
        """batch_no -> prompts requested, for every stage-1 call of `category` already stored."""
        rows = self.store.execute("SELECT batch_no, requested FROM datagen_batches WHERE category = ?", [category])
        return {int(b): int(r) for b, r in rows}

    def prompt_count(self, category: str | None = None) -> int:
        if category is None:
            return self.store.execute("SELECT count(*) FROM datagen_prompts")[0][0]
        return self.store.execute("SELECT count(*) FROM datagen_prompts WHERE category = ?", [category])[0][0]

    def save_batch(
        self,
        category: str,
        batch_no: int,
        topic: str,
        requested: int,
        prompts: Sequence[str],
        model: str,
        usage: Usage,
        attempts: int,
    ) -> int:
        """Store one stage-1 call's prompts and mark the batch done, atomically. Returns how many were new."""
        now = utcnow()
        fresh: dict[str, str] = {}
        for text in prompts:
            key = prompt_key(text)
            if key and key not in fresh:
                fresh[key] = text.strip()
        with self.store.transaction():
            added = 0
            if fresh:
                inserted = self.store.execute(
                    "INSERT OR IGNORE INTO datagen_prompts (prompt, prompt_key, category, batch_no, source, model, "
                    "created_at) VALUES "
                    + ", ".join(["(?, ?, ?, ?, 'gemini', ?, ?)"] * len(fresh))
                    + " RETURNING prompt_id",
                    [v for key, text in fresh.items() for v in (text, key, category, batch_no, model, now)],
                )
                added = len(inserted)
            self.store.execute(
                "INSERT INTO datagen_batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    category,
                    batch_no,
                    topic,
                    requested,
                    len(prompts),
                    added,
                    model,
                    usage.input_tokens,
                    usage.output_tokens,
                    attempts,
                    now,
                ],
            )
        return added

    # -- stage 2: responses -----------------------------------------------------------------------------
    def _pending_where(self, categories: Sequence[str] | None, retry_failed: bool) -> tuple[str, list]:
        where = ["NOT EXISTS (SELECT 1 FROM datagen_pairs r WHERE r.prompt_id = p.prompt_id)"]
        params: list = []
        if not retry_failed:
            where.append("NOT EXISTS (SELECT 1 FROM datagen_errors e WHERE e.prompt_id = p.prompt_id AND e.permanent)")
        if categories:
            where.append(f"p.category IN ({', '.join('?' * len(categories))})")
            params.extend(categories)
        return " AND ".join(where), params

    def pending_prompts(
        self, categories: Sequence[str] | None = None, limit: int | None = None, retry_failed: bool = False
    ) -> list[PendingPrompt]:
        """Prompts with no answer yet, oldest first; those that failed for good are left out unless asked."""
        where, params = self._pending_where(categories, retry_failed)
        sql = f"SELECT prompt_id, prompt, category FROM datagen_prompts p WHERE {where} ORDER BY prompt_id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [PendingPrompt(*row) for row in self.store.execute(sql, params)]

    def has_answer(self, prompt_id: int) -> bool:
        rows = self.store.execute("SELECT count(*) FROM datagen_pairs WHERE prompt_id = ?", [prompt_id])
        return bool(rows[0][0])

    def prompts_by_id(self, prompt_ids: Sequence[int]) -> dict[int, PendingPrompt]:
        if not prompt_ids:
            return {}
        rows = self.store.execute(
            f"SELECT prompt_id, prompt, category FROM datagen_prompts WHERE prompt_id IN "
            f"({', '.join('?' * len(prompt_ids))})",
            list(prompt_ids),
        )
        return {row[0]: PendingPrompt(*row) for row in rows}

    def pending_count(self, categories: Sequence[str] | None = None, retry_failed: bool = False) -> int:
        where, params = self._pending_where(categories, retry_failed)
        return self.store.execute(f"SELECT count(*) FROM datagen_prompts p WHERE {where}", params)[0][0]

    def save_responses(self, answers: Sequence[tuple[PendingPrompt, str, str, str | None, Usage]]) -> int:
        """Store answers (prompt, text, model, finish_reason, usage) in one transaction; returns how many were new.

        One multi-row INSERT per batch: a commit per answer costs ~10 ms in DuckDB and would cap a 100-way
        concurrent run at a few dozen answers a second.
        """
        if not answers:
            return 0
        now = utcnow()
        params: list = []
        for prompt, text, model, finish_reason, usage in answers:
            params += [
                prompt.prompt_id,
                prompt.prompt,
                text,
                pair_key(prompt.prompt, text),
                prompt.category,
                model,
                finish_reason,
                usage.input_tokens,
                usage.output_tokens,
                now,
            ]
        with self.store.transaction():
            rows = self.store.execute(
                "INSERT OR IGNORE INTO datagen_pairs (prompt_id, prompt, response, pair_key, source, category, model, "
                "finish_reason, input_tokens, output_tokens, created_at) VALUES "
                + ", ".join(["(?, ?, ?, ?, 'gemini', ?, ?, ?, ?, ?, ?)"] * len(answers))
                + " RETURNING pair_id",
                params,
            )
        return len(rows)

    # -- imports ----------------------------------------------------------------------------------------
    def insert_pairs(self, rows: Iterable[dict]) -> int:
        """Insert imported pairs ({prompt, response, source, model?, category?, meta?}); returns how many were new.

        Duplicates (same normalised prompt and response, here or already stored) are skipped, so importing a
        file twice adds nothing the second time.
        """
        now = utcnow()
        values: dict[str, list] = {}
        for r in rows:
            key = pair_key(r["prompt"], r["response"])
            if key in values:
                continue
            values[key] = [
                r["prompt"],
                r["response"],
                key,
                r["source"],
                r.get("category"),
                r.get("model"),
                json.dumps(r["meta"]) if r.get("meta") else None,
                now,
            ]
        if not values:
            return 0
        import pyarrow as pa

        # One set-based INSERT from an Arrow table: row-by-row inserts take minutes for 100K pairs.
        columns = ["prompt", "response", "pair_key", "source", "category", "model", "meta", "created_at"]
        table = pa.table({c: [v[i] for v in values.values()] for i, c in enumerate(columns)})
        with self.store.registered("datagen_import_chunk", table):
            inserted = self.store.execute(
                "INSERT OR IGNORE INTO datagen_pairs (prompt, response, pair_key, source, category, model, meta, "
                "created_at) SELECT prompt, response, pair_key, source, category, model, CAST(meta AS JSON), "
                "created_at FROM datagen_import_chunk RETURNING pair_id"
            )
        return len(inserted)

    # -- errors -----------------------------------------------------------------------------------------
    def log_error(
        self,
        stage: str,
        kind: str,
        detail: str,
        category: str | None = None,
        batch_no: int | None = None,
        prompt_id: int | None = None,
        permanent: bool = False,
    ) -> None:
        self.store.execute(
            "INSERT INTO datagen_errors (logged_at, stage, kind, detail, category, batch_no, prompt_id, permanent) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [utcnow(), stage, kind, detail[:500], category, batch_no, prompt_id, permanent],
        )

    # -- batch jobs -------------------------------------------------------------------------------------
    def add_batch_job(self, name: str, stage: str, model: str, keys: Sequence[str]) -> None:
        self.store.execute(
            "INSERT INTO datagen_batch_jobs (name, stage, model, keys, state, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            [name, stage, model, json.dumps(list(keys)), "submitted", utcnow()],
        )

    def open_batch_jobs(self, stage: str) -> list[tuple[str, str, list[str]]]:
        """(name, model, keys) of the jobs of `stage` whose results are not stored yet, oldest first."""
        rows = self.store.execute(
            "SELECT name, model, keys FROM datagen_batch_jobs WHERE stage = ? AND finished_at IS NULL "
            "ORDER BY created_at, name",
            [stage],
        )
        return [(name, model, json.loads(keys)) for name, model, keys in rows]

    def finish_batch_job(self, name: str, state: str) -> None:
        self.store.execute(
            "UPDATE datagen_batch_jobs SET state = ?, finished_at = ? WHERE name = ?", [state, utcnow(), name]
        )

    # -- export and status ------------------------------------------------------------------------------
    def iter_pairs(
        self,
        sources: Sequence[str] = (),
        categories: Sequence[str] = (),
        include_incomplete: bool = False,
        chunk: int = 5000,
    ) -> Iterator[dict]:
        where, params = [], []
        if sources:
            where.append(f"source IN ({', '.join('?' * len(sources))})")
            params.extend(sources)
        if categories:
            where.append(f"category IN ({', '.join('?' * len(categories))})")
            params.extend(categories)
        if not include_incomplete:
            where.append(f"(finish_reason IS NULL OR finish_reason = '{COMPLETE_FINISH}')")
        sql = "SELECT pair_id, prompt, response, source, category, model FROM datagen_pairs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY pair_id"
        for pair_id, prompt, response, source, category, model in self.store.iter_rows(sql, params, chunk):
            yield {
                "pair_id": pair_id,
                "prompt": prompt,
                "response": response,
                "source": source,
                "category": category,
                "model": model,
            }

    def summary(self) -> dict:
        """Counts for `datagen status`."""
        q = self.store.execute
        return {
            "prompts_by_category": q(
                "SELECT category, count(*) FROM datagen_prompts GROUP BY category ORDER BY category"
            ),
            "batches": q(
                "SELECT count(*), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0) FROM datagen_batches"
            )[0],
            "pairs_by_source": q(
                "SELECT source, count(*), count(*) FILTER (WHERE finish_reason IS NOT NULL "
                f"AND finish_reason <> '{COMPLETE_FINISH}') FROM datagen_pairs GROUP BY source ORDER BY source"
            ),
            "response_tokens": q(
                "SELECT coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0) "
                "FROM datagen_pairs WHERE prompt_id IS NOT NULL"
            )[0],
            "unanswered": self.pending_count(retry_failed=True),
            "failed_for_good": q(
                "SELECT count(DISTINCT prompt_id) FROM datagen_errors WHERE permanent AND "
                "prompt_id NOT IN (SELECT prompt_id FROM datagen_pairs WHERE prompt_id IS NOT NULL)"
            )[0][0],
            "errors_by_kind": q(
                "SELECT stage, kind, count(*) FROM datagen_errors GROUP BY stage, kind ORDER BY stage, kind"
            ),
        }
