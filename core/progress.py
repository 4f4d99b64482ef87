"""Batch progress on stderr: documents done/failed, rate and ETA.

On a terminal it is a live rich bar. Anywhere else (a log file, `nohup`, CI) a bar would print nothing
until the end, so each finished document gets one plain line instead:

    revprompt: [3/20] done https://example.com/about  (2 done, 1 failed, 4.2 docs/min, eta 4m 3s)
    revprompt: [4/20] failed https://example.com/gone: HTTP 404  (2 done, 2 failed, 4.4 docs/min, eta 3m 38s)

A crawl only knows its page limit, so its total and ETA read as upper bounds: `[4/≤100]`, `eta ≤22m 40s`.

A batch of one (a single text or file) prints no lines.
"""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m"


def _can_encode(text: str, encoding: str) -> bool:
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


class BatchProgress:
    def __init__(self, label: str = "analysing", enabled: bool = True, plain: bool | None = None, stream=None):
        self.label = label
        self.enabled = enabled
        self.stream = stream  # default: sys.stderr at start()
        self.plain = plain  # None: plain lines unless stderr is a terminal
        self.done = self.failed = self.skipped = 0
        self.duplicates = 0  # stored as copies of another page, not analysed
        self.total: int | None = None
        self.estimated = False
        self._started = 0.0
        self._progress: Progress | None = None
        self._task = TaskID(0)  # read only while _progress is set

    # -- what the batch calls ---------------------------------------------------------------------------
    def start(self, total: int | None, skipped: int = 0, estimated: bool = False) -> None:
        """`total`: documents expected (None: unknown); `estimated`: it is only an upper bound (a crawl)."""
        self.total = total
        self.estimated = estimated
        self.skipped = skipped
        self._started = time.monotonic()
        if not self.enabled:
            return
        stream = self.stream or sys.stderr
        if self.plain is None:
            self.plain = not (hasattr(stream, "isatty") and stream.isatty())
        if self.plain:
            return
        console = Console(file=stream)
        progress = self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "[green]{task.fields[done]} done[/green] [red]{task.fields[failed]} failed[/red]{task.fields[skipped]}"
            ),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        progress.start()
        self._task = progress.add_task(self.label, total=total, done=0, failed=0, rate="", skipped=self._skipped_text())

    def skip(self, uri: str | None = None) -> None:
        """A document an earlier, interrupted run already finished."""
        self.skipped += 1
        if self._progress is not None:
            self._progress.update(self._task, skipped=self._skipped_text())

    def advance(self, doc) -> None:
        if doc.status == "done":
            self.done += 1
        elif doc.status == "duplicate":
            self.duplicates += 1
        else:
            self.failed += 1
        n = self.handled
        if self.total is not None and n > self.total:
            self.total = n  # an estimate (a crawl's page limit) can be passed
        if not self.enabled:
            return
        if self.plain:
            if self.total != 1:
                self._line(doc)
            return
        if self._progress is not None:
            self._progress.update(
                self._task, advance=1, total=self.total, done=self.done, failed=self.failed, rate=self.rate_text()
            )

    def finish(self) -> None:
        if self._progress is not None:
            # An estimated total (a crawl that ran out of pages early) ends at what was actually done.
            self._progress.update(self._task, total=self.handled)
            self._progress.stop()
            self._progress = None

    # -- text -------------------------------------------------------------------------------------------
    @property
    def handled(self) -> int:
        """Documents stored so far in this session: analysed, failed or duplicates."""
        return self.done + self.failed + self.duplicates

    def rate(self) -> float | None:
        elapsed = time.monotonic() - self._started
        n = self.handled
        return n / elapsed if elapsed > 0 and n else None

    def rate_text(self) -> str:
        rate = self.rate()
        return f"{rate * 60:.1f} docs/min" if rate else ""

    def eta(self) -> float | None:
        rate = self.rate()
        if rate is None or self.total is None:
            return None
        return max(0, self.total - self.handled) / rate

    def _skipped_text(self) -> str:
        return f" [dim]{self.skipped} already done[/dim]" if self.skipped else ""

    def _line(self, doc) -> None:
        n = self.handled
        stream = self.stream or sys.stderr
        encoding = getattr(stream, "encoding", None) or "utf-8"
        bound = ("≤" if _can_encode("≤", encoding) else "<=") if self.estimated else ""
        where = f"[{n}/{bound}{self.total}]" if self.total is not None else f"[{n}]"
        what = (
            f"done {doc.uri}"
            if doc.status == "done"
            else f"duplicate {doc.uri} (of {doc.meta.get('duplicate_of')})"
            if doc.status == "duplicate"
            else f"failed {doc.uri}: {doc.error}"
        )
        facts = [f"{self.done} done", f"{self.failed} failed"]
        if self.duplicates:
            facts.append(f"{self.duplicates} duplicates")
        if self.skipped:
            facts.append(f"{self.skipped} already done")
        if self.rate_text():
            facts.append(self.rate_text())
        eta = self.eta()
        if eta is not None:
            facts.append(f"eta {bound}{_duration(eta)}")
        line = f"revprompt: {where} {what}  ({', '.join(facts)})"
        try:
            print(line.encode(encoding, "replace").decode(encoding), file=stream, flush=True)
        except (OSError, ValueError):  # a closed or broken stderr must not stop the batch
            pass
