"""Loading ahead of the analysis, in discovery order: the one loop a local batch and a Ray batch share.

    pending (source, uri | Document) -> [ready Document | load in flight | load here, in turn] -> Document, ...

`load_ahead` keeps a queue of what discovery gave, in order, and yields each entry's Document as soon as it
is the oldest and ready, so copies are found in discovery order however the loads finish. An entry is one of:

- a Document a source handed over ready (a crawl's page): yielded as it is;
- a load in flight (`InFlight`): a `concurrent.futures.Future` of a load in one of the `concurrency` worker
  threads, for sources that declare `concurrent_loads = True` (web pages: fetching is waiting), or whatever
  `remote` returned for it (a Ray runner's load on an actor);
- anything else (a file on disk): loaded here when its turn comes, by the caller's `load`.

The worker threads are daemons (`core/threads.py` `DaemonPool`): Ctrl-C never waits for a fetch in flight,
and a stopped batch abandons what was queued. Up to `lookahead()` entries (default: `concurrency`) wait
ahead of the consumer; the oldest is yielded as soon as it is ready, or when the queue is full, waiting for it.
While it waits, `poll(seconds)` is called again and again (never longer than `POLL_SECONDS` each time) when
given: a Ray runner saves the groups its actors finished meanwhile, and the wait stays interruptible.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from .threads import DaemonPool
from .types import Document

#: longest single `poll` while the oldest load is still in flight
POLL_SECONDS = 0.1


class InFlight(Protocol):
    """A load running elsewhere (a `concurrent.futures.Future`, a Ray runner's load job)."""

    def done(self) -> bool: ...

    def result(self) -> Document: ...


def threaded_loads(source: Any) -> bool:
    """Whether a source's loads may run in worker threads (`concurrent_loads = True`: thread-safe loads)."""
    return bool(getattr(source, "concurrent_loads", False))


class _Here:
    """A load that runs in the consumer's thread when its turn comes."""

    __slots__ = ("source", "uri")

    def __init__(self, source: Any, uri: str):
        self.source, self.uri = source, uri


def load_ahead(
    pending: Iterable[tuple[Any, str | Document]],
    load: Callable[[Any, str], Document],
    concurrency: int,
    *,
    threaded: Callable[[Any], bool] = threaded_loads,
    remote: Callable[[Any, str], InFlight | None] | None = None,
    lookahead: Callable[[], int] | None = None,
    poll: Callable[[float], None] | None = None,
    idle: Callable[[], None] | None = None,
    thread_name_prefix: str = "revprompt-load",
) -> Iterator[Document]:
    """Documents in discovery order, with loads running ahead of the consumer.

    `load(source, uri)` loads one target and turns any failure into a failed Document (it runs in a worker
    thread when `threaded(source)`, else here). `remote(source, uri)` may start the load elsewhere and return
    it (None: load it here or in a thread, as above). `lookahead()` is how many entries may wait ahead (read
    after each entry; default `concurrency`). `poll(seconds)` is called while an entry waits (see above).
    `idle()` is called once each time the consumer is about to wait for a load still in flight: a local batch
    analyses the documents it already holds instead of waiting on the network with work in hand.
    """
    workers = max(1, int(concurrency))
    pool = DaemonPool(workers, thread_name_prefix=thread_name_prefix)
    queue: deque[Document | InFlight | _Here] = deque()

    def ready(entry: Document | InFlight | _Here) -> bool:
        if isinstance(entry, (Document, _Here)):
            return True
        if not entry.done() and poll is not None:
            poll(0)
        return entry.done()

    def resolve(entry: Document | InFlight | _Here) -> Document:
        if isinstance(entry, Document):
            return entry
        if isinstance(entry, _Here):
            return load(entry.source, entry.uri)
        if idle is not None and not entry.done():
            idle()
        if poll is not None:
            while not entry.done():
                poll(POLL_SECONDS)
        return entry.result()

    try:
        for source, item in pending:
            if isinstance(item, Document):
                queue.append(item)
            else:
                started = remote(source, item) if remote is not None else None
                if started is not None:
                    queue.append(started)
                elif threaded(source):
                    queue.append(pool.submit(load, source, item))
                else:
                    queue.append(_Here(source, item))
            limit = lookahead() if lookahead is not None else workers
            while queue and (ready(queue[0]) or len(queue) > limit):
                yield resolve(queue.popleft())
        while queue:
            yield resolve(queue.popleft())
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
