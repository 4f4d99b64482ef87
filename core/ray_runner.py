"""`revprompt analyze --ray`: the same batch with loading and the sweep on a Ray cluster (issue 16).

The driver (this process) does what only it can do, exactly as a local batch does it: it opens the run (same
run key, so a Ray run and a local run of one command resume each other), discovers the targets, skips what the
run already holds, spots copies (`content_hash`, in discovery order), and saves every document through
`core/analyzers.py` `save_analysed`, the one path into the store. The cluster does the expensive part:

    driver: discover -> skip done -> [load on an actor] -> hash / copy check -> group of `batch_docs`
        -> [sweep on an actor] -> save_analysed (one transaction per document) -> progress

Each Ray actor (`EngineWorker`) loads the model once and keeps it; its `load` method fetches pages in a few
threads ("io" concurrency group) while its `analyse` method sweeps one group at a time ("compute" group, one
thread), so fetching never waits for the model and the model never waits for the network. Sources whose
targets live on the driver's disk (files, pasted text) and streaming sources (the crawl) load on the driver;
web pages (`url`, `urls`, `sitemap`, or any source that sets `remote_loads = True`) load on the cluster.

Why actors and `ray.wait`, not Ray Data or `ray.util.ActorPool` (docs/scale-out.md says more): the driver must
know which documents were in flight on an actor that died, to send exactly those to another actor, and it must
see results one group at a time to save them as they finish. A dict `ObjectRef -> job` over plain actors gives
both in a page of code. ActorPool re-raises an actor's death without saying which value was lost, and runs one
call per actor at a time; Ray Data owns ordering and retries at the block level and needs its own dependencies.

Guarantees, the same as a local batch's:
- one row per target: every document is saved by the driver, under UNIQUE (run_id, uri);
- an actor that dies (SIGKILL, OOM, a lost node) costs nothing: the groups it held are sent to another actor
  (a group that kills actors twice is split, to find the document that does it; a document that kills an
  actor MAX_ATTEMPTS times becomes a failed row saying so); Ray restarts the actor (`max_restarts`);
- a document that fails stays a failed row with its error;
- a killed driver loses only what was in flight: re-running the command resumes the run.
"""

from __future__ import annotations

import logging
import os
import re
import time
import warnings
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..sources.base import Source, SourceContext, as_source
from .batch import DEFAULT_CONCURRENCY, BatchRunner, BatchSummary, pick_source
from .errors import UserError
from .loadahead import load_ahead
from .store import Store
from .types import Document, SweepResult

log = logging.getLogger("revprompt.ray")

#: sources whose loads are plain web fetches: they run on the cluster (a source may opt in with `remote_loads`)
REMOTE_LOAD_SOURCES = frozenset({"url", "urls", "sitemap"})
#: an actor dying under the same documents this often makes them failed rows (a document that crashes the model)
MAX_ATTEMPTS = 3
#: analysis groups queued on one actor: one running, one waiting, so it never idles on a round trip
ANALYSES_PER_WORKER = 2
#: how often Ray restarts a dead actor (its groups go to other actors meanwhile)
MAX_RESTARTS = 4
#: seconds to wait for the first actor to load its model
START_TIMEOUT = float(os.environ.get("REVPROMPT_RAY_START_TIMEOUT", "900"))
#: longest single wait on the cluster: Ctrl-C is never held longer than this by a `ray.wait`
WAIT_SECONDS = 0.5

_ADDRESS = re.compile(r"^(ray://)?(\[[0-9a-fA-F:.]+\]|[\w.\-]+):\d+$")


def require_ray() -> Any:
    """Ray, or a one-line error saying how to get it (revprompt works without it; only --ray needs it)."""
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray: pip install 'revprompt[ray]'", 2) from None
    return ray


def is_address(value: str | None) -> bool:
    """Whether a --ray value names a cluster ('auto', 'local', HOST:PORT, ray://HOST:PORT), not a target."""
    return bool(value) and (value in ("auto", "local") or bool(_ADDRESS.match(value or "")))


@dataclass
class RaySettings:
    """How the run uses the cluster (none of it changes the run key: a Ray run resumes a local one)."""

    address: str = "auto"  # 'auto': RAY_ADDRESS, else a new local Ray on 127.0.0.1; 'local'; or HOST:PORT
    actors: int | None = None  # default: as many as fit (one per GPU on a GPU cluster)
    cpus_per_actor: float = 1.0
    gpus_per_actor: float | None = None  # default: 1 when the cluster has GPUs, else 0
    local_cpus: int | None = None  # CPUs of a local Ray started here (default: all)


@dataclass
class Connection:
    ray: Any
    owned: bool  # we called ray.init, so we call ray.shutdown


def connect(address: str = "auto", local_cpus: int | None = None, verbose: bool = False) -> Connection:
    """Join (or start) a Ray cluster. A Ray already initialised in this process (a notebook, a test) is used
    as it is. 'auto' is RAY_ADDRESS when set, else a new local Ray bound to 127.0.0.1 (no dashboard);
    'local' always starts one; anything else is a cluster's address (`ray start --head` prints it)."""
    ray = require_ray()
    if ray.is_initialized():
        return Connection(ray, owned=False)
    quiet: dict[str, Any] = dict(log_to_driver=verbose, logging_level=logging.INFO if verbose else logging.ERROR)
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS") or "local"
    try:
        if address == "local":
            ray.init(
                address="local", num_cpus=local_cpus, include_dashboard=False, _node_ip_address="127.0.0.1", **quiet
            )
        else:
            host = address.removeprefix("ray://").rsplit(":", 1)[0].strip("[]")
            loopback = host in ("localhost", "::1") or host.startswith("127.")
            extra = {"_node_ip_address": "127.0.0.1"} if loopback and not address.startswith("ray://") else {}
            ray.init(address=address, **extra, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise UserError(f"cannot reach the Ray cluster at {address}: {exc}", 1) from None
    return Connection(ray, owned=True)


# -- the actor ---------------------------------------------------------------------------------------------
class EngineWorker:
    """One Ray actor: one Engine (one model load), web loads in its "io" threads, sweeps in its "compute" one.

    Wrapped by `worker_class()` (Ray is imported only when --ray is used)."""

    def __init__(self, engine_kwargs: dict, threads: int):
        self.error: tuple[str, int] | None = None
        self.engine: Any = None
        self._sources: dict[str, Source] = {}
        try:
            import torch

            torch.set_num_threads(max(1, threads))
            from .cli_options import load_engine
            from .engine import InputTruncatedWarning

            warnings.simplefilter("ignore", InputTruncatedWarning)  # the driver prints one note per run
            with _node_lock():  # the first actor on a node prepares the model cache; the others wait, then read it
                self.engine = load_engine(**engine_kwargs)
        except UserError as exc:
            self.error = (str(exc), exc.exit_code)
        except Exception as exc:  # noqa: BLE001 -- shown on the driver, one line
            self.error = (f"the Ray worker could not load the model: {type(exc).__name__}: {exc}", 1)

    def info(self) -> dict:
        import socket

        if self.error:
            return {"error": self.error}
        e = self.engine
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "device": e.device,
            "dtype": e.dtype,
            "max_input_tokens": e.max_input_tokens,
            "window_origin": e.window_origin,
            "batch_docs": e.batch_docs,
        }

    def pid(self) -> int:
        return os.getpid()

    def load(self, source_name: str, uri: str, options: dict) -> Document:
        """One target fetched into a Document; a failure is a failed Document, as in a local batch. `options`
        are the run's options (the context's `done`/`stored_meta` are the driver's: web loads never need them)."""
        try:
            ctx = SourceContext.of(options)
            source = self._sources.get(source_name)
            if source is None:
                source = self._sources[source_name] = as_source(pick_source(uri, ctx, source_name))
            return source.load(uri, ctx)
        except UserError as exc:
            return Document(uri=uri, source=source_name).failed(str(exc))
        except Exception as exc:  # noqa: BLE001 -- a source bug costs one row
            log.debug("source %s failed on %s", source_name, uri, exc_info=True)
            return Document(uri=uri, source=source_name).failed(f"{type(exc).__name__}: {exc}")

    def write_shards(self, root: str, shard: list[tuple[str, str, Any]]) -> str | None:
        """Write one Parquet shard under `root` (core/parquet_io.py `write_tables`): None, or why it could not."""
        from .parquet_io import write_tables

        try:
            write_tables(root, shard)
        except Exception as exc:  # noqa: BLE001 -- shown on the driver, one line
            return f"{type(exc).__name__}: {exc}"
        return None

    def shard_doc_ids(self, root: str, run_id: str) -> list[int] | str:
        """doc_ids of the run that the shards under `root` hold, or why they could not be read."""
        from .parquet_io import shard_doc_ids

        try:
            return sorted(shard_doc_ids(root, run_id))
        except Exception as exc:  # noqa: BLE001
            return f"{type(exc).__name__}: {exc}"

    def analyse(self, texts: list[str], kinds: list[str] | None = None):
        """[(SweepResult | None, error | None)] for a group, as BatchRunner._analyse_group does it: the group in
        one batched sweep, and one by one when the group fails (to find the text that broke it). A UserError
        (the engine's own refusal) comes back as ("user_error", message, exit code) and stops the batch."""
        results: dict[int, SweepResult] = {}
        if len(texts) > 1 and hasattr(self.engine, "sweep_many"):
            try:
                results = dict(self.engine.sweep_many(texts, kinds=kinds))
            except UserError as exc:
                return ("user_error", str(exc), exc.exit_code)
            except Exception:  # noqa: BLE001
                log.debug("group analysis failed; retrying one by one", exc_info=True)
                results = {}
        out: list[tuple[SweepResult | None, str | None]] = []
        for i, text in enumerate(texts):
            result = results.get(i)
            if result is None:
                try:
                    start = time.perf_counter()
                    result = self.engine.sweep(text, kind=kinds[i] if kinds else "response")
                    result.seconds = result.seconds or time.perf_counter() - start
                except UserError as exc:
                    return ("user_error", str(exc), exc.exit_code)
                except Exception as exc:  # noqa: BLE001 -- one bad document must not stop the batch
                    out.append((None, f"analysis failed: {type(exc).__name__}: {exc}"))
                    continue
            out.append((result, None))
        return out


class _node_lock:
    """A lock file in the model cache: actors on one node load one after another, so the first prepares the
    cache (dequantize, merge the adapter) and the others read it instead of racing to write it."""

    lock: Any

    def __enter__(self):
        from .model import cache_dir

        try:
            from filelock import FileLock  # a dependency of Ray's
        except ImportError:  # pragma: no cover
            self.lock = None
            return self
        self.lock = FileLock(str(cache_dir() / "ray-load.lock"))
        self.lock.acquire()
        return self

    def __exit__(self, *exc):
        if self.lock is not None:
            self.lock.release()


_WORKER_CLASSES: dict[int, Any] = {}


def worker_class(io_threads: int) -> Any:
    """EngineWorker as a Ray actor class with `io_threads` loading threads, one sweeping thread and one thread
    writing Parquet shards."""
    ray = require_ray()
    if io_threads not in _WORKER_CLASSES:
        cls = type(
            "EngineWorker",
            (EngineWorker,),
            {
                "load": ray.method(concurrency_group="io")(EngineWorker.load),
                "analyse": ray.method(concurrency_group="compute")(EngineWorker.analyse),
                "write_shards": ray.method(concurrency_group="parquet")(EngineWorker.write_shards),
                "shard_doc_ids": ray.method(concurrency_group="parquet")(EngineWorker.shard_doc_ids),
            },
        )
        groups = {"io": io_threads, "compute": 1, "parquet": 1}
        _WORKER_CLASSES[io_threads] = ray.remote(concurrency_groups=groups)(cls)
    return _WORKER_CLASSES[io_threads]


# -- the driver --------------------------------------------------------------------------------------------
@dataclass
class _Worker:
    index: int
    handle: Any
    ready: bool = False
    alive: bool = True
    probing: bool = False  # an `info` call is out to see whether it came back after dying
    probe_at: float | None = None  # when to ask again (it was restarting)
    probes: int = 0
    deaths: int = 0
    loads: int = 0  # calls in flight
    analyses: int = 0
    writes: int = 0
    info: dict = field(default_factory=dict)


@dataclass
class _Job:
    kind: str  # 'start', 'load', 'analyse' or 'write'
    worker: _Worker | None
    docs: list[Document] = field(default_factory=list)  # analyse: the group
    source: str = ""  # load: the source name and the target
    uri: str = ""  # load: the target; write: the shards' root
    attempts: int = 0
    loaded: Document | None = None  # load: the loaded document, once back
    shard: list[tuple[str, str, Any]] = field(default_factory=list)  # write: (table, file name, rows)

    # a load is what core/loadahead.py waits on (`InFlight`)
    def done(self) -> bool:
        return self.loaded is not None

    def result(self) -> Document:
        assert self.loaded is not None
        return self.loaded


class _RayShards:
    """ParquetSink's writer in a Ray batch (core/parquet_io.py `ShardWriter`): the driver reads the saved rows
    from its store, the actors write them (`EngineWorker.write_shards`), one shard at a time and in order (each
    flush rewrites the run's row: a later one must not be overtaken). A shard whose actor dies is written again,
    under the same names, by another one."""

    def __init__(self, runner: RayBatchRunner, root: str):
        self.runner = runner
        self.root = root

    def accepting(self) -> bool:
        return not self.runner._stopping  # a stopping batch sends nothing more: the resumed run exports the rest

    def exported(self, run_id: str) -> set[int]:
        return self.runner._shard_doc_ids(self.root, run_id)

    def write(self, shard: list[tuple[str, str, Any]]) -> None:
        self.runner._write_shard(self.root, shard)

    def wait(self) -> None:
        self.runner._drain_writes()


class RayBatchRunner(BatchRunner):
    """BatchRunner with loading and the sweep on Ray actors; everything else is BatchRunner's own code.

    `engine_kwargs` are `Engine.load`'s arguments (each actor calls it once)."""

    def __init__(
        self,
        store: Store,
        engine_kwargs: dict,
        engine_description: dict,
        analyzers: list | None = None,
        options: dict | None = None,
        progress=None,
        run_level_analysis: bool = True,
        settings: RaySettings | None = None,
        verbose: bool = False,
    ):
        super().__init__(
            store, self._no_local_engine, engine_description, analyzers, options, progress, run_level_analysis
        )
        self.engine_kwargs = dict(engine_kwargs)
        self.settings = settings or RaySettings()
        self.verbose = verbose
        self.batch_docs = max(1, int(self.engine_kwargs.get("batch_docs") or 4))
        self.workers: list[_Worker] = []
        self.engine_info: dict | None = None  # the first actor's engine (device, dtype, window)
        self.deaths = 0  # actor deaths seen (each sent its work elsewhere)
        self.retried = 0  # jobs sent again after an actor died
        self._inflight: dict = {}  # ObjectRef -> _Job
        self._connection: Connection | None = None
        self._ctx: tuple[str, BatchSummary] | None = None
        self._remote_options: dict = {}
        self._writing: _Job | None = None  # the shard an actor is writing
        self._shards: deque[_Job] = deque()  # shards waiting for it
        self._stopping = False  # the batch is stopping (Ctrl-C, an error): nothing more is sent or waited for

    @staticmethod
    def _no_local_engine():
        raise RuntimeError("a Ray batch analyses on its actors, never in the driver")

    def run(
        self, command: str, targets: list[str], source_name: str | None = None, resume_run_id: str | None = None
    ) -> BatchSummary:
        """BatchRunner.run, the actors stopped at the end. With `--output-parquet` (a ParquetSink as progress),
        the actors write the shards, the run's row as it ended included, before they stop."""
        from .parquet_io import ParquetSink

        sink = self.progress if isinstance(self.progress, ParquetSink) else None
        if sink is not None:
            sink.writer = _RayShards(self, sink.root)
        self._stopping = False
        try:
            summary = super().run(command, targets, source_name, resume_run_id)
            if sink is not None:
                sink.flush(summary.run_id)  # the run's row, finished
                self._drain_writes()
                sink.close()  # written: the actors stop now
            return summary
        except BaseException:
            self._stopping = True
            raise
        finally:
            self.close()

    def close(self) -> None:
        """Stop our actors (and the Ray we started); the run's stored documents are all committed by now."""
        if self._connection is None:
            return
        ray = self._connection.ray
        for worker in self.workers:
            try:
                ray.kill(worker.handle)
            except Exception:  # noqa: BLE001 -- already gone
                pass
        self.workers, self._inflight = [], {}
        self._writing, self._shards = None, deque()
        if self._connection.owned:
            ray.shutdown()
        self._connection = None

    # -- the actors -----------------------------------------------------------------------------------------
    def start_workers(self) -> list[_Worker]:
        """Connect, start the actors, and wait until one has loaded its model (the others join when ready)."""
        if self.workers:
            return self.workers
        s = self.settings
        self._connection = connect(s.address, s.local_cpus, self.verbose)
        ray = self._connection.ray
        total = ray.cluster_resources()
        on_gpu = total.get("GPU", 0) >= 1 and self.engine_kwargs.get("device") != "cpu"
        gpus = s.gpus_per_actor if s.gpus_per_actor is not None else (1.0 if on_gpu else 0.0)
        cpus = s.cpus_per_actor
        if cpus > total.get("CPU", 0) or gpus > total.get("GPU", 0):
            raise UserError(
                f"the Ray cluster has {total.get('CPU', 0):g} CPUs and {total.get('GPU', 0):g} GPUs: "
                f"no room for an actor of {cpus:g} CPUs and {gpus:g} GPUs (see --ray-cpus)",
                2,
            )
        n = s.actors or max(1, int(total.get("GPU", 0) // gpus) if gpus else int(total.get("CPU", 0) // cpus))
        io_threads = max(1, int(self.options.get("concurrency") or DEFAULT_CONCURRENCY))
        actor = worker_class(io_threads).options(
            num_cpus=cpus, num_gpus=gpus, max_restarts=MAX_RESTARTS, max_task_retries=0
        )
        threads = max(1, int(round(cpus)))
        for i in range(n):
            worker = _Worker(i, actor.remote(self.engine_kwargs, threads))
            self.workers.append(worker)
            self._inflight[worker.handle.info.remote()] = _Job("start", worker)
        deadline = time.monotonic() + START_TIMEOUT
        while not any(w.ready for w in self.workers):
            if time.monotonic() > deadline:
                raise UserError(f"no Ray actor started within {START_TIMEOUT:.0f}s (is the cluster out of room?)", 1)
            self._pump(timeout=5.0)
        log.info("ray: %d actors of %g CPUs, %g GPUs", n, cpus, gpus)
        return self.workers

    @property
    def ray(self) -> Any:
        assert self._connection is not None, "no Ray connection (start_workers first)"
        return self._connection.ray

    def _pick(self, kind: str, avoid: _Worker | None = None) -> _Worker:
        """The ready, living actor with the least of `kind` in flight (not `avoid` if another will do)."""
        self.start_workers()
        while True:
            usable = [w for w in self.workers if w.ready and w.alive]
            if not any(w.alive for w in self.workers):
                raise UserError("every Ray actor died (finished documents are stored; re-run the command to resume)", 1)
            if avoid is not None and len(usable) > 1:
                usable = [w for w in usable if w is not avoid]
            if usable:
                best = min(usable, key=lambda w: (getattr(w, kind), w.loads + w.analyses, w.index))
                if kind != "analyses" or best.analyses < ANALYSES_PER_WORKER:
                    return best
            self._pump()

    def _submit(self, job: _Job, avoid: _Worker | None = None) -> None:
        if job.kind == "load":
            worker = self._pick("loads", avoid)
            worker.loads += 1
            ref = worker.handle.load.remote(job.source, job.uri, self._remote_options)
        elif job.kind == "write":
            worker = self._pick("writes", avoid)
            worker.writes += 1
            ref = worker.handle.write_shards.remote(job.uri, job.shard)
        else:
            worker = self._pick("analyses", avoid)
            worker.analyses += 1
            ref = worker.handle.analyse.remote([d.text for d in job.docs], [d.kind for d in job.docs])
        job.worker = worker
        self._inflight[ref] = job

    def _probe(self, worker: _Worker) -> None:
        worker.probe_at, worker.probes = None, worker.probes + 1
        self._inflight[worker.handle.info.remote()] = _Job("start", worker)

    def _pump(self, timeout: float | None = None) -> None:
        """Wait for one finished call (at most `timeout` seconds) and take every call finished by then."""
        for worker in self.workers:
            if worker.probe_at is not None and worker.probe_at <= time.monotonic():
                self._probe(worker)
        # never one long wait: Ctrl-C and the restart probes get their turn (callers wait in a loop)
        timeout = WAIT_SECONDS if timeout is None else min(timeout, WAIT_SECONDS)
        if not self._inflight:
            time.sleep(min(timeout, 0.05))  # nothing to wait on yet: never a hot loop
            return
        ray = self.ray
        ready, _ = ray.wait(list(self._inflight), num_returns=1, timeout=timeout)
        if ready:
            more, _ = ray.wait(list(self._inflight), num_returns=len(self._inflight), timeout=0)
            ready = list(dict.fromkeys(ready + more))
        for ref in ready:
            job = self._inflight.pop(ref, None)
            if job is None:  # taken by a nested pump (a retry waiting for an actor)
                continue
            worker = job.worker
            assert worker is not None
            if job.kind == "load":
                worker.loads -= 1
            elif job.kind == "analyse":
                worker.analyses -= 1
            elif job.kind == "write":
                worker.writes -= 1
            try:
                value = ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                self._lost(job, exc)
                continue
            except ray.exceptions.RayError as exc:  # our worker code raised: the job's documents fail, with why
                self._broken(job, exc)
                continue
            self._took(job, value)

    def _took(self, job: _Job, value) -> None:
        worker = job.worker
        assert worker is not None
        if job.kind == "start":
            if value.get("error"):
                message, code = value["error"]
                raise UserError(message, code)
            worker.ready, worker.probing, worker.info = True, False, value
            self.engine_info = self.engine_info or value
        elif job.kind == "load":
            job.loaded = value
        elif job.kind == "write":
            if value is not None:
                raise UserError(f"cannot write the Parquet shards under {job.uri}: {value}", 1)
            self._wrote()
        else:
            if isinstance(value, tuple) and value and value[0] == "user_error":
                raise UserError(value[1], value[2])
            for doc, (result, error) in zip(job.docs, value):
                self._analysed(doc, result, error)

    def _lost(self, job: _Job, exc) -> None:
        """An actor died with `job` in flight: send the job elsewhere (split, or give up, as it recurs).

        The actor gets no new work until a probe (`info`) answers: Ray restarts it (`max_restarts`, its model
        loaded again) and the probe comes back; an actor past its restarts fails the probe and is dropped."""
        worker = job.worker
        assert worker is not None
        if job.kind == "start":
            if type(exc).__name__ == "ActorUnavailableError" and worker.probes < 120:
                worker.probe_at = time.monotonic() + 0.5  # restarting: ask again in a moment (see _pump)
                return
            worker.alive = worker.probing = False
            if not any(w.alive for w in self.workers):
                raise UserError(f"no Ray actor could start: {_first_line(exc)}", 1)
            return
        if worker.ready:  # the first of its calls to fail: one death
            self.deaths += 1
            worker.deaths += 1
            worker.ready = False
            log.warning("ray: actor %d died (%s); its work goes to another actor", worker.index, _first_line(exc))
        if not worker.probing and worker.alive:
            worker.probing = True
            self._probe(worker)
        job.attempts += 1
        doing = {"load": "loading", "write": "writing"}.get(job.kind, "analysing")
        why = f"the Ray actor died while {doing} it ({_first_line(exc)})"
        if job.attempts >= MAX_ATTEMPTS:
            if job.kind == "write":
                raise UserError(f"no Ray actor could write a Parquet shard under {job.uri}: {why}", 1)
            if job.kind == "load":
                job.loaded = Document(uri=job.uri, source=job.source).failed(f"{why}, {job.attempts} times")
            else:
                for doc in job.docs:
                    self._analysed(doc, None, f"analysis failed: {why}, {job.attempts} times")
            return
        self.retried += 1
        if job.kind == "analyse" and len(job.docs) > 1 and job.attempts >= 2:
            for doc in job.docs:  # which document kills the actor? one at a time now
                self._submit(_Job("analyse", worker, [doc], attempts=job.attempts), avoid=worker)
            return
        self._submit(job, avoid=worker)

    def _broken(self, job: _Job, exc) -> None:
        error = f"{type(exc).__name__}: {_first_line(exc)}"
        if job.kind == "start":
            raise UserError(f"a Ray actor could not start: {error}", 1)
        if job.kind == "write":
            raise UserError(f"cannot write the Parquet shards under {job.uri}: {error}", 1)
        if job.kind == "load":
            job.loaded = Document(uri=job.uri, source=job.source).failed(error)
        else:
            for doc in job.docs:
                self._analysed(doc, None, f"analysis failed: {error}")

    # -- the batch, as BatchRunner runs it, with the cluster in the middle ----------------------------------
    def _load_ahead(
        self, pending: Iterable[tuple[Source, str | Document]], options: SourceContext
    ) -> Iterator[Document]:
        """Documents in discovery order (so copies are found as a local run finds them), through the local batch's
        loop (core/loadahead.py): web pages load on the actors, up to a few groups' worth ahead of the analysis;
        other sources load here, as locally (in daemon threads when they allow it). While the oldest load is out,
        the groups the actors finished are saved (`_pump`)."""
        self._remote_options = {k: v for k, v in SourceContext.of(options).options.items() if not k.startswith("_")}
        concurrency = max(1, int(options.get("concurrency") or DEFAULT_CONCURRENCY))
        remote_seen = False

        def remote(source: Any, uri: str) -> _Job | None:
            nonlocal remote_seen
            if source.name not in REMOTE_LOAD_SOURCES and not getattr(source, "remote_loads", False):
                return None
            job = _Job("load", None, source=source.name, uri=uri)
            self._submit(job)
            remote_seen = True
            return job

        def lookahead() -> int:
            if not remote_seen:
                return concurrency
            alive = len([w for w in self.workers if w.alive])
            return max(concurrency, alive * (concurrency + self.batch_docs * ANALYSES_PER_WORKER))

        def poll(seconds: float) -> None:
            if self._inflight or seconds:
                self._pump(timeout=seconds)

        return load_ahead(
            pending,
            lambda source, uri: self._load(source, uri, options),
            concurrency,
            remote=remote,
            lookahead=lookahead,
            poll=poll,
        )

    def _analyse_stream(self, run_id: str, docs: Iterator[Document], summary: BatchSummary) -> None:
        """As BatchRunner's, but a full group goes to an actor and the loop goes on; results are saved as they
        come back (in `_pump`), and the stream ends when nothing is in flight. Stopped (Ctrl-C, an error), it
        sends and waits for nothing more: what is saved is saved, the rest is the resumed run's."""
        try:
            self._stream(run_id, docs, summary)
        except BaseException:
            self._stopping = True
            raise

    def _stream(self, run_id: str, docs: Iterator[Document], summary: BatchSummary) -> None:
        self._ctx = (run_id, summary)
        group: list[Document] = []
        for doc in docs:
            if not self._admit(run_id, doc, summary):
                continue
            group.append(doc)
            if len(group) >= self.batch_docs:
                self._submit(_Job("analyse", None, group))
                group = []
        if group:
            self._submit(_Job("analyse", None, group))
        while any(job.kind in ("load", "analyse") for job in self._inflight.values()):
            self._pump()

    # -- Parquet shards, written by the actors (see _RayShards) -----------------------------------------------
    def _write_shard(self, root: str, shard: list[tuple[str, str, Any]]) -> None:
        from .parquet_io import plain

        job = _Job("write", None, uri=root, shard=[(t, name, plain(rows)) for t, name, rows in shard])
        if self._writing is None:
            self._writing = job
            self._submit(job)
        else:
            self._shards.append(job)

    def _wrote(self) -> None:
        """The shard in flight is written: send the next."""
        self._writing = None
        if self._shards:
            self._writing = self._shards.popleft()
            self._submit(self._writing)

    def _drain_writes(self) -> None:
        while (self._writing is not None or self._shards) and not self._stopping:
            self._pump()

    def _shard_doc_ids(self, root: str, run_id: str) -> set[int]:
        """What the shards under `root` hold of the run, read by an actor (the driver may have no access)."""
        avoid = None
        for _ in range(MAX_ATTEMPTS):
            worker = self._pick("writes", avoid)
            ref = worker.handle.shard_doc_ids.remote(root, run_id)
            while not self.ray.wait([ref], timeout=WAIT_SECONDS)[0]:
                pass
            try:
                value = self.ray.get(ref)
            except self.ray.exceptions.RayActorError:
                avoid = worker  # its other calls report the death; ask another actor
                continue
            if isinstance(value, str):
                raise UserError(f"cannot read the Parquet shards under {root}: {value}", 1)
            return set(value)
        raise UserError(f"no Ray actor could read the Parquet shards under {root}", 1)

    def _analysed(self, doc: Document, result: SweepResult | None, error: str | None) -> None:
        """Save one analysed document as `_analyse_group` does."""
        assert self._ctx is not None
        run_id, summary = self._ctx
        if result is None:
            doc.failed(error or "analysis failed")
            copied = doc.meta.get("content_hash")
            if copied is not None and self._first_copy.get(copied) == doc.uri:
                del self._first_copy[copied]  # a later copy gets its own try
        else:
            doc.status = "done"
        self._save(run_id, doc, result, summary)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
