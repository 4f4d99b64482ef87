"""Batch runs: targets -> sources -> engine -> analyzers -> store, resumable, one row per target.

A run is identified by its targets, source, model and sweep settings (`target_key`): re-running the same
command resumes the unfinished run instead of starting over; `--resume RUN_ID` names one explicitly, and
`--retry-failed` goes back to the latest run of the same command (finished or not) to retry its failures.

The pipeline streams:

    discover (per target)  ->  skip what the run already holds  ->  load ahead (a few fetches in flight)
        ->  analyse  ->  save (one transaction per document)  ->  progress

Most sources list their URIs up front (a sitemap, a URL list, a folder): those lists are expanded before the
first page is fetched, so a resumed run skips finished URIs without fetching them, and the progress bar has a
total. Sources are sources/base.py `Source`s; each call gets the run's `SourceContext` (the options, the URIs the
run holds, a stored document's meta). A streaming source (`streaming = True`, the crawl) finds its targets while
fetching: its discover() yields ready Documents as it goes, and URIs for what the run already holds. Every
document is saved in its own transaction right after it is analysed, so a killed run loses at most the documents
in flight, and the store's UNIQUE (run_id, uri) means nothing is ever stored twice.

Nothing is analysed twice either: each loaded text is hashed (`content_hash`), and a text an earlier document
of the run already had (the same page under another URL: `?search=...`, `/index.html`, a print view) is stored
with status 'duplicate' and `duplicate_of` = that document's uri, without a model run. A source may also hand
over a document already marked 'duplicate' (the crawl does, for a page whose canonical is another page).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Set
from dataclasses import dataclass, field

from ..sources.base import Source, SourceContext, as_source
from .analyzers import finish_run, prepare, save_analysed
from .errors import Interrupted, UserError
from .loadahead import load_ahead
from .storable import redact_text, safe_text, stored_uri
from .store import Store
from .types import Document, SweepResult

log = logging.getLogger("revprompt.batch")

DEFAULT_CONCURRENCY = 4
# Options that change how targets are fetched, not which documents a run holds: changing them between a
# run and its re-run still resumes it. The batch's own; each source adds its (`Source.run_neutral_options`).
RUN_NEUTRAL_OPTIONS = frozenset({"retry_failed", "concurrency", "timeout"})


def run_neutral_options() -> frozenset[str]:
    """RUN_NEUTRAL_OPTIONS and those every registered source declares."""
    from .plugin_manager import sources

    return RUN_NEUTRAL_OPTIONS.union(*(s.run_neutral_options for s in sources()))


@dataclass
class BatchSummary:
    run_id: str
    done: int = 0
    failed: int = 0
    skipped: int = 0
    duplicates: int = 0  # stored with status 'duplicate': the same text as an earlier document, not analysed
    results: list[tuple[Document, SweepResult | None, int]] = field(default_factory=list)  # (doc, result, doc_id)
    resumed: bool = False


def pick_source(target: str, options: SourceContext | dict, source_name: str | None = None) -> Source:
    from .plugin_manager import sources

    available = sources()
    if source_name:
        for s in available:
            if s.name == source_name:
                return s
        raise UserError(f"no source named '{source_name}' (see `revprompt plugins`)")
    fallback = None
    for s in available:
        if s.name == "text":
            fallback = s
            continue
        if s.claims(target, SourceContext.of(options)):
            return s
    if fallback is None:
        raise UserError(f"no source can read {target!r}")
    return fallback


def target_key(
    targets: Iterable[str],
    source_name: str | None,
    engine_description: dict,
    options: dict,
    neutral: Set[str] | None = None,
) -> str:
    """The run key; `neutral`: the options left out (default: `run_neutral_options()`)."""
    neutral = run_neutral_options() if neutral is None else neutral
    payload = json.dumps(
        {
            "targets": list(targets),
            "source": source_name,
            "engine": engine_description,
            "options": {k: v for k, v in sorted(options.items()) if not k.startswith("_") and k not in neutral},
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


@dataclass
class _Target:
    source: Source
    target: str
    items: Iterable[str | Document]


class BatchRunner:
    """Drives one run. `engine_factory` is called only when there is something to analyse."""

    def __init__(
        self,
        store: Store,
        engine_factory: Callable[[], object],
        engine_description: dict,
        analyzers: list | None = None,
        options: dict | None = None,
        progress=None,
        run_level_analysis: bool = True,
    ):
        """`run_level_analysis=False` skips the analyzers' run-level step (the TUI's one pasted text is no
        site, and the site intent map would load an embedding model there)."""
        self.store = store
        self.run_level_analysis = run_level_analysis
        self.engine_factory = engine_factory
        self._engine = None
        self._flush_group: Callable[[], None] | None = None  # set while a stream is analysed
        self.engine_description = engine_description
        self.analyzers = analyzers if analyzers is not None else []
        self.options = options or {}
        # object with start(total | None, estimated=bool), skip(uri), advance(doc), finish(), or None
        # (see core/progress.py)
        self.progress = progress
        self._first_copy: dict[str, str] = {}  # content_hash -> uri of the document analysed for that text
        if self.analyzers:
            self.analyzers = prepare(store, self.analyzers)

    @property
    def engine(self):
        if self._engine is None:
            self._engine = self.engine_factory()
        return self._engine

    # -- the run --------------------------------------------------------------------------------------
    def open_run(self, command: str, targets: list[str], source_name: str | None, resume_run_id: str | None):
        key = target_key(targets, source_name, self.engine_description, self.options)
        run = None
        if resume_run_id:
            run = self.store.get_run(resume_run_id)
            if run is None:
                raise UserError(
                    f'no run {resume_run_id} in {self.store.path} (see `revprompt sql "SELECT * FROM runs"`)'
                )
        elif self.options.get("retry_failed"):
            _, rows = self.store.query(
                "SELECT run_id FROM runs WHERE target_key = ? ORDER BY created_at DESC LIMIT 1", [key]
            )
            run = self.store.get_run(rows[0][0]) if rows else None
        else:
            run = self.store.find_unfinished_run(key)
        if run is not None:
            if run.status != "running":
                self.store.reopen_run(run.run_id)
            return run.run_id, True
        return self.store.create_run(
            command, self.engine_description.get("model", "?"), self.engine_description, key
        ), False

    def run(
        self, command: str, targets: list[str], source_name: str | None = None, resume_run_id: str | None = None
    ) -> BatchSummary:
        self.check_targets(targets, source_name)
        run_id, resumed = self.open_run(command, targets, source_name, resume_run_id)
        try:
            return self._run(run_id, resumed, targets, source_name)
        except KeyboardInterrupt as exc:
            # Ctrl-C: every document saved so far stays (each was its own transaction); the run is marked
            # 'interrupted', which re-running the command resumes like any run that did not finish.
            try:
                self.store.finish_run(run_id, "interrupted")
            except Exception:
                log.debug("could not mark run %s interrupted", run_id, exc_info=True)
            raise Interrupted(run_id) from exc
        except BaseException:
            # A usage error or a crash half-way must not leave the run looking alive in `runs`; its stored
            # documents stay, and re-running the command still resumes it (any status but 'finished' does).
            try:
                self.store.finish_run(run_id, "failed")
            except Exception:  # the store itself may be what broke
                log.debug("could not mark run %s failed", run_id, exc_info=True)
            raise

    def check_targets(self, targets: list[str], source_name: str | None) -> None:
        """Refuse a target that cannot be what the user meant (a missing file, a broken URL) before a run is
        opened: a typo costs one line, not a stored run. Sources opt in with `check(target, options)`."""
        ctx = SourceContext(dict(self.options))
        for target in targets:
            as_source(pick_source(target, ctx, source_name)).check(target, ctx)

    def _run(self, run_id: str, resumed: bool, targets: list[str], source_name: str | None) -> BatchSummary:
        summary = BatchSummary(run_id=run_id, resumed=resumed)
        finished = self.store.finished_uris(run_id, include_failed=not self.options.get("retry_failed"))
        options = SourceContext(
            dict(self.options), done=finished, stored_meta=lambda uri: self._stored_meta(run_id, uri)
        )
        self._first_copy = self._stored_hashes(run_id)
        plan, total, estimated = self.plan(targets, source_name, options, finished)
        if self.progress:
            self.progress.start(total, estimated=estimated)
        try:
            self._analyse_stream(run_id, self._load_ahead(self._pending(plan, finished, summary), options), summary)
        finally:
            if self.progress:
                self.progress.finish()
        if self.analyzers and self.run_level_analysis:
            finish_run(self.store, run_id, self.analyzers)
        self.store.finish_run(run_id)
        return summary

    def plan(self, targets: list[str], source_name: str | None, options: SourceContext, finished: set[str]):
        """Pick a source for each target and start its discovery: ([_Target], expected documents or None,
        whether that number is only an upper bound).

        Listing sources are expanded now (their sitemaps are fetched, their folders listed); a streaming
        source stays lazy and contributes its estimate (a crawl's page limit), if it has one.
        """
        plan: list[_Target] = []
        total: int | None = 0
        estimated = False
        listed: set[str] = set()
        for target in targets:
            source = as_source(pick_source(target, options, source_name))
            items = source.discover(target, options)
            if source.streaming:
                n = source.estimate(target, options)
                total = None if (total is None or n is None) else total + max(0, n - len(finished))
                estimated = True
            else:
                items = list(items)
                for item in items:
                    uri = stored_uri(_uri(item))
                    if uri not in finished and uri not in listed:
                        listed.add(uri)
                        if total is not None:
                            total += 1
            plan.append(_Target(source, target, items))
        return plan, total, estimated

    def _pending(
        self, plan: list[_Target], finished: set[str], summary: BatchSummary
    ) -> Iterator[tuple[Source, str | Document]]:
        """(source, uri or Document) for everything the run does not hold yet, each URI once."""
        seen: set[str] = set()
        for entry in plan:
            try:
                for item in entry.items:
                    uri = stored_uri(_uri(item))  # how the store spells it: what `finished` holds
                    if uri in seen:
                        continue  # the same page reached twice (two sitemaps, a list with repeats) is analysed once
                    seen.add(uri)
                    if uri in finished:
                        summary.skipped += 1
                        if self.progress:
                            self.progress.skip(uri)
                        continue
                    yield entry.source, item
            except UserError:
                raise
            except Exception as exc:  # a broken streaming source ends its target, with a message, not a traceback
                target = redact_text(entry.target)  # no credentials in a log line or the message
                log.debug("source %s failed on %s", entry.source.name, target, exc_info=True)
                reason = redact_text(f"{type(exc).__name__}: {exc}")
                raise UserError(
                    f"{entry.source.name} source stopped on {target}: {reason} "
                    "(finished documents are stored; re-run the command to resume)",
                    1,
                ) from None

    def _load_ahead(
        self, pending: Iterator[tuple[Source, str | Document]], options: SourceContext
    ) -> Iterator[Document]:
        """Documents in discovery order, with up to `concurrency` loads running ahead in worker threads.

        Only sources that declare `concurrent_loads = True` load in threads (daemon threads: Ctrl-C never waits
        for a fetch); others load here, in turn. The loop is core/loadahead.py's, shared with the Ray batch.
        """
        workers = max(1, int(options.get("concurrency") or DEFAULT_CONCURRENCY))
        return load_ahead(
            pending, lambda source, uri: self._load(source, uri, options), workers, idle=self._while_loads_wait
        )

    def _while_loads_wait(self) -> None:
        """The next document is still being fetched: analyse the group gathered so far now rather than let it
        wait for a full --batch-docs (a slow site then sets the group size, and nothing fetched sits idle)."""
        if self._flush_group is not None:
            self._flush_group()

    def _analyse_stream(self, run_id: str, docs: Iterator[Document], summary: BatchSummary) -> None:
        """Analyse loaded documents in small groups (the engine decodes a group in shared forwards) and save
        each as soon as its group is done; failed loads are saved at once. A group is analysed when it is
        full, or earlier when the next document is still in flight (`_while_loads_wait`)."""
        group: list[Document] = []

        def flush() -> None:
            nonlocal group
            if group:
                full, group = group, []
                self._analyse_group(run_id, full, summary)

        self._flush_group = flush
        try:
            for doc in docs:
                if not self._admit(run_id, doc, summary):
                    continue
                group.append(doc)
                if len(group) >= max(1, int(getattr(self.engine, "batch_docs", 1) or 1)):
                    flush()
            flush()
        finally:
            self._flush_group = None

    def _admit(self, run_id: str, doc: Document, summary: BatchSummary) -> bool:
        """Make a loaded document storable and hash it; a failed load or a copy of a document already seen is
        saved at once (False), anything else goes on to analysis (True). Shared with the Ray batch."""
        _make_storable(doc)
        if self.options.get("kind"):  # `analyze --kind`: every document is a page, or a response
            doc.meta["kind"] = self.options["kind"]
        if doc.status != "failed":
            doc.meta["content_hash"] = content_hash(doc.text)
        if doc.status == "failed" or self._is_copy(doc):
            self._save(run_id, doc, None, summary)
            return False
        return True

    def _analyse_group(self, run_id: str, group: list[Document], summary: BatchSummary) -> None:
        results: dict[int, SweepResult] = {}
        if len(group) > 1 and hasattr(self.engine, "sweep_many"):
            try:
                results = dict(self.engine.sweep_many([d.text for d in group], kinds=[d.kind for d in group]))
            except UserError:
                raise
            except Exception:  # find the document that broke the group by analysing them one by one
                log.debug("group analysis failed; retrying one by one", exc_info=True)
                results = {}
        for i, doc in enumerate(group):
            result = results.get(i)
            if result is None:
                try:
                    start = time.perf_counter()
                    result = self.engine.sweep(doc.text, kind=doc.kind)
                    result.seconds = (
                        result.seconds or time.perf_counter() - start
                    )  # an engine that timed itself knows best
                except UserError:
                    raise
                except Exception as exc:  # one bad document must not stop the batch
                    log.debug("analysis failed for %s", doc.uri, exc_info=True)
                    doc.failed(f"analysis failed: {type(exc).__name__}: {exc}")
                    result = None
                    copied = doc.meta.get("content_hash")
                    if copied is not None and self._first_copy.get(copied) == doc.uri:
                        del self._first_copy[copied]  # a later copy gets its own try
            if result is not None:
                doc.status = "done"
            self._save(run_id, doc, result, summary)

    def _save(self, run_id: str, doc: Document, result: SweepResult | None, summary: BatchSummary) -> None:
        doc_id = save_analysed(self.store, run_id, doc, result, self.analyzers)
        if doc.status == "failed":
            result = None  # the store refused the document (see save_analysed): its row keeps the error only
        summary.results.append((doc, result, doc_id))
        if doc.status == "done":
            summary.done += 1
        elif doc.status == "duplicate":
            summary.duplicates += 1
        else:
            summary.failed += 1
        if self.progress:
            self.progress.advance(doc)

    def _load(self, source: Source, uri: str, options: SourceContext | None = None) -> Document:
        try:
            return source.load(uri, SourceContext(dict(self.options)) if options is None else options)
        except UserError as exc:
            return Document(uri=uri, source=source.name).failed(str(exc))
        except Exception as exc:  # a source bug must cost one row, not the batch
            log.debug("source %s failed on %s", source.name, uri, exc_info=True)
            return Document(uri=uri, source=source.name).failed(f"{type(exc).__name__}: {exc}")

    def _is_copy(self, doc: Document) -> bool:
        """Whether `doc` is stored as a duplicate, unanalysed: its source said so (a canonical elsewhere), or
        an earlier document of the run had the same text. The first document with a text is its original."""
        if doc.status == "duplicate":
            return True
        first = self._first_copy.setdefault(doc.meta["content_hash"], doc.uri)
        if first == doc.uri:
            return False
        doc.status, doc.meta["duplicate_of"] = "duplicate", first
        return True

    def _stored_hashes(self, run_id: str) -> dict[str, str]:
        """content_hash -> uri of the first analysed copy, for what the run already holds (a resumed run
        keeps recognising the copies of pages an earlier session analysed)."""
        _, rows = self.store.query(
            "SELECT content_hash, uri FROM documents WHERE run_id = ? AND status = 'done' "
            "AND content_hash IS NOT NULL ORDER BY doc_id DESC",
            [run_id],
        )
        return dict(rows)  # the lowest doc_id wins: it comes last

    def _stored_meta(self, run_id: str, uri: str) -> dict | None:
        """A stored document's meta (a crawled page's links, its final URL, its canonical): a resumed crawl
        reads it instead of fetching the page again."""
        _, rows = self.store.query(
            "SELECT meta, canonical, duplicate_of FROM documents WHERE run_id = ? AND uri = ?",
            [run_id, stored_uri(uri)],
        )
        if not rows:
            return None
        raw, canonical, duplicate_of = rows[0]
        try:
            meta = (json.loads(raw) if isinstance(raw, str) else raw) or {}
        except ValueError:
            meta = {}
        if not isinstance(meta, dict):
            return None
        extra = {k: v for k, v in (("canonical", canonical), ("duplicate_of", duplicate_of)) if v}
        return {**meta, **extra} or None


def content_hash(text: str) -> str:
    """The identity of a text for finding copies: SHA-256 of its words, so spacing and line breaks that
    differ between two renderings of one page do not matter."""
    return hashlib.sha256(" ".join((text or "").split()).encode("utf-8", "surrogatepass")).hexdigest()


def _uri(item: str | Document) -> str:
    return item.uri if isinstance(item, Document) else item


def _make_storable(doc: Document) -> None:
    """Clean a loaded document before the model and the store see it: lone surrogates escaped (the tokenizer
    and DuckDB both refuse them), credentials out of its URI and error (they are shown and stored)."""
    doc.uri = stored_uri(doc.uri)
    doc.text = safe_text(doc.text)
    doc.title = safe_text(doc.title)
    doc.description = safe_text(doc.description)
    doc.error = safe_text(redact_text(doc.error))
