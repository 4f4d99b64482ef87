"""Run many jobs with at most N in flight, a progress bar on stderr, and a stop on fatal errors.

Workers share one asyncio loop; DuckDB writes happen in that same thread, between awaits, so the store
never sees two writers. A job returns True (stored) or False (failed, recorded, a re-run retries it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .gemini import CallCounters, FatalError

J = TypeVar("J")

# After this many failures in a row with no success, something is wrong for every call (a dead endpoint,
# an exhausted quota): stop instead of burning through the whole queue.
MAX_CONSECUTIVE_FAILURES = 25


@dataclass
class PoolResult:
    ok: int = 0
    failed: int = 0
    not_started: int = 0


class RunProgress:
    """A rich progress bar on stderr: jobs done, failures, retries and the rate, with an ETA."""

    def __init__(self, label: str, total: int, counters: CallCounters, enabled: bool = True):
        self.counters = counters
        self._progress = None
        if enabled and total:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("[red]{task.fields[failed]} failed[/red] [yellow]{task.fields[retries]} retries[/yellow]"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._task = self._progress.add_task(label, total=total, failed=0, retries=0)

    def __enter__(self):
        if self._progress:
            self._progress.start()
        return self

    def __exit__(self, *exc):
        if self._progress:
            self._progress.stop()

    def advance(self, failed: int) -> None:
        if self._progress:
            self._progress.update(self._task, advance=1, failed=failed, retries=self.counters.retries)


async def run_pool(
    jobs: Sequence[J],
    handle: Callable[[J], Awaitable[bool]],
    concurrency: int,
    progress: RunProgress,
) -> PoolResult:
    """Run `handle` over `jobs`, `concurrency` at a time. Raises FatalError once in-flight jobs are done."""
    queue: asyncio.Queue = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    result = PoolResult()
    fatal: list[FatalError] = []
    streak = [0]  # consecutive failures

    async def worker():
        while not fatal:
            try:
                job = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                ok = await handle(job)
            except FatalError as exc:
                fatal.append(exc)
                return
            if ok:
                result.ok += 1
                streak[0] = 0
            else:
                result.failed += 1
                streak[0] += 1
                if streak[0] >= MAX_CONSECUTIVE_FAILURES and not fatal:
                    fatal.append(FatalError("too_many_failures", f"{streak[0]} calls in a row failed; stopping"))
            progress.advance(result.failed)

    workers = [asyncio.create_task(worker()) for _ in range(max(1, min(concurrency, len(jobs))))]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
    result.not_started = queue.qsize()
    if fatal:
        raise fatal[0]
    return result
