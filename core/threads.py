"""Worker threads that never hold the process's exit: the fetch pools of the batch (local or Ray: core/loadahead.py)
and the crawl.

`concurrent.futures.ThreadPoolExecutor` joins its workers when the interpreter exits (Python 3.9+ registers
that join with `threading`), whatever `shutdown(wait=False)` said. A fetch in flight when Ctrl-C arrives
then holds the exit until it ends: up to `--timeout`, or for minutes against a server that drips bytes.
A fetch worker writes nothing anyone waits for once the batch has stopped (documents are saved by the main
thread, each in its own transaction), so its threads here are daemons: an interrupted batch exits at once,
and an abandoned fetch dies with the process.

`DaemonPool` has the part of the executor's interface the batch uses: `submit` returns a
`concurrent.futures.Future`, `shutdown(cancel_futures=True)` cancels what has not started and lets the
workers go. Running work is never waited for.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future


class DaemonPool:
    def __init__(self, max_workers: int, thread_name_prefix: str = "revprompt-worker"):
        self.max_workers = max(1, int(max_workers))
        self.prefix = thread_name_prefix
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit to a pool that was shut down")
            self._work.put((future, fn, args, kwargs))
            if self._idle == 0 and len(self._threads) < self.max_workers:
                thread = threading.Thread(target=self._worker, name=f"{self.prefix}_{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
            else:
                self._idle = max(0, self._idle - 1)
        return future

    def _worker(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            future, fn, args, kwargs = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as exc:  # noqa: BLE001 - handed to whoever reads the future
                    future.set_exception(exc)
                del future, fn, args, kwargs, item
            with self._lock:
                if self._closed:
                    return
                self._idle += 1

    def shutdown(self, wait: bool = False, cancel_futures: bool = True) -> None:
        """No more work; queued work cancelled (with `cancel_futures`); running work is never waited for
        unless `wait` (and then only by this call, never by the interpreter's exit)."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        if cancel_futures:
            while True:
                try:
                    item = self._work.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        for _ in threads:
            self._work.put(None)
        if wait:
            for thread in threads:
                thread.join()
