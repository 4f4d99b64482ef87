"""--batch: send a stage's requests as Gemini Batch API jobs instead of one call each.

Why: datagen needs no fast answers, and the Batch API bills half the interactive price, with its own quota (no
429 storms). A job is answered within hours (the API's target is 24 h), so it is not the default.

How it stays resumable: the moment `batches.create` returns, the job's name and the keys of its requests (in
request order) go into `datagen_batch_jobs`. A later run with the same command first polls those jobs
(`batches.get`) instead of paying for the same requests again, and leaves their keys out of what it submits.
When a job reaches a terminal state its inlined responses are handed to the stage, which stores them, and only
then is the job marked finished; storing is idempotent, so a kill in between costs nothing but a re-read.
Ctrl-C while waiting leaves the jobs running at Google; the next run collects them.

Requests go inline (`src=[InlinedRequest, ...]`): the Gemini API takes up to 20 MB of them in one create call,
so big stages are split into several jobs. Each request carries `metadata={"key": ...}`, which the API echoes
on its response; when a response has none, its position in the stored key list names it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .gemini import Backoff, CallCounters, FatalError, GeminiCaller, Transient
from .settings import GeminiSettings
from .tables import DatagenTables

log = logging.getLogger("revprompt.datagen")

DEFAULT_POLL_S = 30.0
MAX_JOB_REQUESTS = 2000  # keeps one job's inlined responses (read back in one GET) to tens of MB
MAX_JOB_BYTES = 8 * 1024 * 1024  # well under the API's 20 MB for inlined requests, leaving room for JSON overhead
REQUEST_OVERHEAD_BYTES = 2048  # generation config, system instruction, schema, metadata per request
SUCCEEDED = "JOB_STATE_SUCCEEDED"
TERMINAL_STATES = frozenset(
    {SUCCEEDED, "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED", "JOB_STATE_PARTIALLY_SUCCEEDED"}
)


@dataclass
class BatchRequest:
    key: str
    contents: str
    config: Any


# handle(key, model, InlinedResponse) stores or logs one response, handle(key, model, None) a request whose job
# ended without answering it; flush() commits what handle collected.
Handler = Callable[[str, str, Any], None]


def split_jobs(requests: Sequence[BatchRequest], overhead: int = REQUEST_OVERHEAD_BYTES) -> list[list[BatchRequest]]:
    """Requests cut into jobs of at most MAX_JOB_REQUESTS and about MAX_JOB_BYTES each."""
    jobs: list[list[BatchRequest]] = []
    current: list[BatchRequest] = []
    size = 0
    for request in requests:
        n = len(request.contents.encode("utf-8")) + overhead
        if current and (len(current) >= MAX_JOB_REQUESTS or size + n > MAX_JOB_BYTES):
            jobs.append(current)
            current, size = [], 0
        current.append(request)
        size += n
    if current:
        jobs.append(current)
    return jobs


class BatchRunner:
    """Submits, stores, polls and collects the Batch API jobs of one stage."""

    def __init__(
        self,
        client,
        tables: DatagenTables,
        settings: GeminiSettings,
        stage: str,
        counters: CallCounters,
        backoff: Backoff,
        poll_s: float = DEFAULT_POLL_S,
        notify: Callable[[str], None] = log.info,
    ):
        self.client = client
        self.tables = tables
        self.settings = settings
        self.stage = stage
        self.counters = counters
        self.backoff = backoff
        self.poll_s = poll_s
        self.notify = notify
        self._caller = GeminiCaller(client, settings, backoff)  # for its error classification
        self._caller.counters = counters

    def open_keys(self) -> set[str]:
        """Keys of requests in jobs submitted earlier and not collected yet: not to be submitted again."""
        return {key for _, _, keys in self.tables.open_batch_jobs(self.stage) for key in keys}

    async def run(self, requests: Sequence[BatchRequest], handle: Handler, flush: Callable[[], None]) -> int:
        """Collect every open job of the stage and submit `requests` as new jobs; returns the jobs collected."""
        jobs = self.tables.open_batch_jobs(self.stage)
        if jobs:
            self.notify(f"picking up {len(jobs)} batch job(s) from an earlier run: " + ", ".join(j[0] for j in jobs))
        for chunk in split_jobs(requests):
            name = await self._submit(chunk)
            keys = [r.key for r in chunk]
            self.tables.add_batch_job(name, self.stage, self.settings.model, keys)
            self.notify(
                f"submitted batch job {name} ({len(chunk)} requests); if this run stops, the same "
                f"command picks the job up"
            )
            jobs.append((name, self.settings.model, keys))
        await self._wait(jobs, handle, flush)
        return len(jobs)

    async def _submit(self, chunk: Sequence[BatchRequest]) -> str:
        from google.genai import types

        src = [types.InlinedRequest(contents=r.contents, config=r.config, metadata={"key": r.key}) for r in chunk]
        config = types.CreateBatchJobConfig(display_name=f"revprompt-datagen-{self.stage}")
        for attempt in range(1, self.backoff.max_attempts + 1):
            try:
                job = await self.client.aio.batches.create(model=self.settings.model, src=src, config=config)
                self.counters.calls += len(chunk)
                return job.name
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # sorted by the same rules as generate_content errors
                problem = self._caller._classify(exc)
            if not isinstance(problem, Transient) or attempt == self.backoff.max_attempts:
                raise FatalError(problem.kind, f"cannot create the batch job: {problem.detail}")
            self.counters.retries += 1
            await asyncio.sleep(self.backoff.delay(attempt, problem.retry_after))
        raise AssertionError("unreachable")

    async def _wait(self, jobs: list[tuple[str, str, list[str]]], handle: Handler, flush: Callable[[], None]):
        waiting = {name: (model, keys) for name, model, keys in jobs}
        last_state: dict[str, str | None] = {}
        failures = 0
        while waiting:
            for name in list(waiting):
                model, keys = waiting[name]
                job = await self._get(name)
                if job is None:  # transient trouble: ask again next round
                    failures += 1
                    continue
                if job == "gone":
                    self._finish(name, "not_found", handle, flush, model, keys, None)
                    del waiting[name]
                    continue
                state = _state(job)
                if state != last_state.get(name):
                    self.notify(f"batch job {name}: {state}")
                    last_state[name] = state
                if state in TERMINAL_STATES:
                    self._finish(name, state, handle, flush, model, keys, job)
                    del waiting[name]
            if waiting:
                await asyncio.sleep(self.backoff.delay(min(failures, 6), None) if failures else self.poll_s)
                failures = 0

    async def _get(self, name: str):
        """The job, "gone" when the API no longer knows it, None after a transient error."""
        from google.genai import errors as genai_errors

        try:
            return await self.client.aio.batches.get(name=name)
        except asyncio.CancelledError:
            raise
        except genai_errors.APIError as exc:
            if exc.code == 404:
                return "gone"
            problem = self._caller._classify(exc)
        except Exception as exc:
            problem = self._caller._classify(exc)
        if isinstance(problem, Transient):
            log.info("polling %s: %s", name, problem.detail)
            return None
        raise FatalError(problem.kind, f"cannot read batch job {name}: {problem.detail}")

    def _finish(self, name: str, state: str, handle: Handler, flush, model: str, keys: list[str], job) -> None:
        responses = list(getattr(getattr(job, "dest", None), "inlined_responses", None) or [])
        answered = set()
        for i, item in enumerate(responses):
            key = (item.metadata or {}).get("key") if item.metadata else None
            key = key or (keys[i] if i < len(keys) else None)
            if key is not None:
                answered.add(key)
                handle(key, model, item)
        for key in keys:
            if key not in answered:
                handle(key, model, None)
        flush()
        if state != SUCCEEDED:
            detail = f"batch job {name} ended in {state}; {len(responses)} of {len(keys)} answers came back"
            log.warning(detail)
            self.tables.log_error(self.stage, "batch_" + state.removeprefix("JOB_STATE_").lower(), detail)
        self.tables.finish_batch_job(name, state)


def _state(job) -> str | None:
    state = getattr(job, "state", None)
    return getattr(state, "value", None) or (str(state) if state is not None else None)
