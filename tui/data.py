"""What the TUI reads from (and, for pasted text, writes to) a results database.

Connection modes: DuckDB lets one process hold a file read-write, and inside one process a read-only and a
read-write connection to the same file conflict. So the app holds exactly one `Store` at a time: a read-only,
sandboxed one while browsing (other processes may read the file meanwhile, and the SQL screen can neither change
it nor reach any other file: core/sandbox.py), swapped for a read-write one only for the instant a pasted result
is saved (`ResultsDB.writable()`), then back. Closing the sandboxed connection ends its locked settings, which is
why the swap closes it first.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from revprompt.core import analyzers as core_analyzers
from revprompt.core import sandbox
from revprompt.core.errors import UserError
from revprompt.core.store import Store, open_sandbox
from revprompt.core.types import SweepResult

NO_KEY_PHRASES = "no key phrases yet (run analysis plugins)"
NO_INTENT = "no intent clusters yet (run analysis plugins)"

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)
STOPWORDS = frozenset(
    """a an the and or but if of to in on at by for with from as is are was were be been being it its this that
    these those i me my we our you your he she they them their his her what which who whom how why when where
    do does did done can could should would will shall may might must not no so than then there here about into
    over under up down out any all some such only own same too very just also s t""".split()
)


def config_label(configs_json: str | None, top_k=None, penalty_alpha=None) -> str:
    """`k=4,a=0.3` for the first decoding configuration, `+N` for the others that gave the same prompt."""
    configs = []
    if configs_json:
        try:
            configs = json.loads(configs_json)
        except (TypeError, ValueError):
            configs = []
    if not configs and top_k is not None:
        configs = [{"top_k": top_k, "penalty_alpha": penalty_alpha}]
    if not configs:
        return "-"
    first = configs[0]
    label = f"k={first.get('top_k')},a={first.get('penalty_alpha'):g}" if first.get("penalty_alpha") is not None \
        else f"k={first.get('top_k')}"
    return label + (f" +{len(configs) - 1}" if len(configs) > 1 else "")


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text or "")]


@dataclass
class WordMatrix:
    """Counts of words (rows) in candidates (columns: ranks), for the heatmap."""

    words: list[str]
    ranks: list[int]
    counts: list[list[int]]
    source: str  # "word_frequencies" (the analysis table) or "candidates" (computed here)

    @property
    def max_count(self) -> int:
        return max((c for row in self.counts for c in row), default=0)


@dataclass
class Cluster:
    cluster_id: int
    label: str
    pages: list[dict] = field(default_factory=list)


class ResultsDB:
    """The TUI's window on one results database (see the module docstring for connection modes)."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self.store = open_sandbox(self.path)
        if not self.has_table("runs") or not self.has_table("documents"):
            self.close()
            raise UserError(f"{self.path} holds no revprompt results (no runs table); run `revprompt analyze` first")

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None

    @contextmanager
    def writable(self) -> Iterator[Store]:
        """Swap the read-only connection for a read-write one for the duration of the block."""
        self.close()
        try:
            with Store(self.path) as store:
                yield store
        finally:
            self.store = open_sandbox(self.path)

    # -- generic ----------------------------------------------------------------------------------------
    def rows(self, sql: str, params: Sequence | None = None) -> list[dict]:
        cols, rows = self.store.query(sql, params)
        return [dict(zip(cols, r)) for r in rows]

    def has_table(self, name: str) -> bool:
        row = self.store.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND table_schema = 'main'", [name]
        ).fetchone()
        return bool(row[0])

    def columns(self, table: str) -> set[str]:
        return _table_columns(self.store, table)

    def query(self, sql: str, limit: int = 1000) -> tuple[list[str], list[tuple], int]:
        """Run the SQL screen's one read-only statement; its rows are returned, at most `limit`.

        Returns (columns, rows, total row count). The same sandbox as `revprompt sql` (core/sandbox.py): one
        SELECT-like statement, refused with a one-line UserError otherwise, on a read-only, locked-down connection.
        """
        cur = sandbox.execute(self.store.con, sql)
        if cur.description is None:
            return [], [], 0
        columns = [d[0] for d in cur.description]
        rows = cur.fetchmany(limit)
        total = len(rows)
        if total == limit:
            total += len(cur.fetchall())
        return columns, rows, total

    # -- runs, documents, candidates --------------------------------------------------------------------
    def runs(self) -> list[dict]:
        return self.rows(
            """SELECT r.run_id, r.created_at, r.finished_at, r.command, r.target_key, r.model, r.status,
                      count(d.doc_id) AS n_docs,
                      count(d.doc_id) FILTER (WHERE d.status = 'done') AS n_done,
                      count(d.doc_id) FILTER (WHERE d.status = 'failed') AS n_failed
               FROM runs r LEFT JOIN documents d ON d.run_id = r.run_id
               GROUP BY ALL ORDER BY r.created_at DESC, r.run_id"""
        )

    def run(self, run_id: str) -> dict | None:
        found = self.rows("SELECT * FROM runs WHERE run_id = ?", [run_id])
        return found[0] if found else None

    def documents(self, run_id: str) -> list[dict]:
        return self.rows(
            """SELECT d.doc_id, d.run_id, d.uri, d.title, d.status, d.error, d.source,
                      min(c.perplexity) AS best_perplexity,
                      arg_min(c.prompt, c.perplexity) AS best_prompt,
                      count(c.candidate_id) AS n_candidates
               FROM documents d LEFT JOIN candidates c ON c.doc_id = d.doc_id
               WHERE d.run_id = ?
               GROUP BY ALL ORDER BY d.doc_id""",
            [run_id],
        )

    def document(self, doc_id: int) -> dict | None:
        found = self.rows("SELECT * FROM documents WHERE doc_id = ?", [doc_id])
        return found[0] if found else None

    def candidates(self, doc_id: int) -> list[dict]:
        out = self.store.candidates(doc_id)
        for cand in out:
            cand["config"] = config_label(cand.get("configs"), cand.get("top_k"), cand.get("penalty_alpha"))
        return out

    def candidate(self, candidate_id: int) -> dict | None:
        found = self.rows("SELECT * FROM candidates WHERE candidate_id = ?", [candidate_id])
        if not found:
            return None
        cand = found[0]
        cand["config"] = config_label(cand.get("configs"), cand.get("top_k"), cand.get("penalty_alpha"))
        return cand

    def tokens(self, candidate_id: int) -> list[dict]:
        return self.store.candidate_tokens(candidate_id)

    # -- analysis tables (filled by the analysis plugins; absent until they ran) -------------------------
    def key_phrases(self, doc_id: int, limit: int = 100) -> list[dict] | None:
        """The document's key phrases, best first; None when the analysis table does not exist."""
        if not self.has_table("key_phrases"):
            return None
        cols = self.columns("key_phrases")
        order = "weight DESC NULLS LAST, " if "weight" in cols else ""
        sql = f"SELECT * FROM key_phrases WHERE doc_id = ? ORDER BY {order}phrase LIMIT {int(limit)}"
        return self.rows(sql, [doc_id])

    def word_matrix(
        self, doc_id: int, candidates: list[dict] | None = None, top: int = 20, use_table: bool = True
    ) -> WordMatrix:
        """Words x candidates counts: from the `word_frequencies` table when it has the document, else
        counted here from the candidates' prompts (stop words left out)."""
        candidates = candidates if candidates is not None else self.candidates(doc_id)
        rank_of = {c["candidate_id"]: c["rank"] for c in candidates}
        ranks = sorted(rank_of.values())
        counts: dict[str, Counter] = {}
        source = "candidates"
        if use_table and self.has_table("word_frequencies") and (
            {"candidate_id", "word", "count"} <= self.columns("word_frequencies")
        ):
            # The plugin keeps stop words but marks them: the heatmap shows content words only.
            content = " AND NOT coalesce(stopword, false)" if "stopword" in self.columns("word_frequencies") else ""
            sql = f"SELECT candidate_id, word, count FROM word_frequencies WHERE doc_id = ?{content}"
            for row in self.rows(sql, [doc_id]):
                rank = rank_of.get(row["candidate_id"])
                if rank is None or not row["word"]:
                    continue
                counts.setdefault(row["word"], Counter())[rank] += int(row["count"] or 0)
            if counts:
                source = "word_frequencies"
        if not counts:
            for cand in candidates:
                for word in words(cand["prompt"]):
                    if word not in STOPWORDS:
                        counts.setdefault(word, Counter())[cand["rank"]] += 1
        # Most frequent overall first; then words found in more candidates; then alphabetical (stable).
        ordered = sorted(counts, key=lambda w: (-sum(counts[w].values()), -len(counts[w]), w))[:top]
        return WordMatrix(ordered, ranks, [[counts[w].get(r, 0) for r in ranks] for w in ordered], source)

    def intent_clusters(self, run_id: str) -> list[Cluster] | None:
        """The run's pages grouped by intent cluster; None when the analysis table does not exist."""
        if not self.has_table("intent_clusters"):
            return None
        cols = self.columns("intent_clusters")
        label = "c.cluster_label" if "cluster_label" in cols else "NULL"
        where = "WHERE c.run_id = ?" if "run_id" in cols else "WHERE d.run_id = ?"
        rows = self.rows(
            f"""SELECT c.cluster_id, {label} AS cluster_label, c.doc_id, d.uri, d.title,
                       (SELECT arg_min(prompt, perplexity) FROM candidates WHERE doc_id = c.doc_id) AS best_prompt
                FROM intent_clusters c LEFT JOIN documents d ON d.doc_id = c.doc_id
                {where} ORDER BY c.cluster_id, c.doc_id""",
            [run_id],
        )
        clusters: dict[int, Cluster] = {}
        for row in rows:
            cid = row["cluster_id"]
            cluster = clusters.setdefault(cid, Cluster(cid, row["cluster_label"] or f"cluster {cid}"))
            cluster.pages.append(row)
        return sorted(clusters.values(), key=lambda c: (-len(c.pages), c.cluster_id))

    def cannibalisation(self, run_id: str, limit: int = 200) -> list[dict] | None:
        if not self.has_table("cannibalisation_pairs"):
            return None
        cols = self.columns("cannibalisation_pairs")
        where = "WHERE p.run_id = ?" if "run_id" in cols else "WHERE a.run_id = ?"
        order = "p.similarity DESC, " if "similarity" in cols else ""
        return self.rows(
            f"""SELECT p.*, coalesce(a.title, a.uri) AS page_a, coalesce(b.title, b.uri) AS page_b
                FROM cannibalisation_pairs p
                LEFT JOIN documents a ON a.doc_id = p.doc_id_a
                LEFT JOIN documents b ON b.doc_id = p.doc_id_b
                {where} ORDER BY {order}p.doc_id_a, p.doc_id_b LIMIT {int(limit)}""",
            [run_id],
        )

    # -- the paste screen's write ------------------------------------------------------------------------
    def save_paste(
        self,
        text: str,
        result: SweepResult,
        description: dict | None = None,
        analyzers: Sequence | None = None,
        on_error: Callable[[str], None] | None = None,
        engine=None,
    ) -> tuple[str, int]:
        """Store a pasted text as `revprompt analyze -` stores the same text: a batch over the text source,
        keyed by the same run key (`description`: the app's engine settings, core/analyze_command.py
        `engine_description`). Returns (run_id, doc_id).

        The paste screen sweeps in a worker while this database stays read-only for browsing; the batch then
        runs in the short read-write window with an engine that hands back that sweep (`engine` only sweeps a
        text the batch cleaned into something else). The per-document analyzers (the registered analysis
        plugins by default; `[]` for none) add their rows in the same transaction (core/analyzers.py
        `save_analysed`); one that fails is skipped, reported through `on_error`, and never loses the result.
        Run-level analysis (the site intent map) is left out: one pasted page is no site, and it would load an
        embedding model on the UI thread.
        """
        from revprompt.core.analyze_command import batch_options, engine_description
        from revprompt.core.batch import BatchRunner

        if analyzers is None:
            analyzers = registered_analyzers()
        description = description or engine_description(getattr(engine, "model_name", None))
        swept = _Swept(text, result, engine)
        capture = _WarningCapture(on_error)
        analyzer_log = logging.getLogger(core_analyzers.log.name)
        analyzer_log.addHandler(capture)
        try:
            with self.writable() as store:
                runner = BatchRunner(store, lambda: swept, description, analyzers=list(analyzers),
                                     options=batch_options(), run_level_analysis=False)
                summary = runner.run("tui paste", [text], source_name="text")
        finally:
            analyzer_log.removeHandler(capture)
        doc, _, doc_id = summary.results[-1] if summary.results else (None, None, None)
        if doc_id is None:  # the run already held this text (an unfinished run of it, resumed)
            _, rows = self.store.query("SELECT doc_id FROM documents WHERE run_id = ? ORDER BY doc_id DESC LIMIT 1",
                                       [summary.run_id])
            doc_id = rows[0][0]
        return summary.run_id, doc_id


class _Swept:
    """The app's engine as the paste's batch sees it: the sweep already done in the worker is handed back for
    its text; any other text (none, unless the batch cleaned it) is swept by the engine itself."""

    batch_docs = 1

    def __init__(self, text: str, result: SweepResult, engine=None):
        self.text, self.result, self.engine = text, result, engine

    def sweep(self, text: str) -> SweepResult:
        if text == self.text and self.result is not None:
            result, self.result = self.result, None
            return result
        if self.engine is None:
            raise UserError("the pasted text changed before it was stored; paste it again")
        return self.engine.sweep(text)


class _WarningCapture(logging.Handler):
    """Hands the analyzer runner's warnings (an analyzer failed) to the screen instead of stderr."""

    def __init__(self, on_error: Callable[[str], None] | None):
        super().__init__(level=logging.WARNING)
        self.on_error = on_error

    def report(self, message: str) -> None:
        if self.on_error:
            self.on_error(message)

    def emit(self, record: logging.LogRecord) -> None:
        self.report(record.getMessage())


def _table_columns(store: Store, table: str) -> set[str]:
    rows = store.con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND table_schema = 'main'", [table]
    ).fetchall()
    return {r[0] for r in rows}


def registered_analyzers() -> list:
    """The analysis plugins, if the plugin machinery can list them (never fatal for the TUI)."""
    try:
        from revprompt.core.plugin_manager import analyzers
    except ImportError:  # pragma: no cover
        return []
    try:
        return list(analyzers())
    except Exception:  # noqa: BLE001 - a broken plugin must not stop the paste screen
        return []
