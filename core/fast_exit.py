"""Ending the process without the interpreter's teardown, once a command's work is saved.

Why: after a one-text `revprompt analyze` has printed its candidates, Python's own finalization (module
teardown of torch and the rest, then the objects holding a gigabyte of weights) took about 0.6 s of an 8 s
command on a 2-core CPU (bench/RESULTS.md, session 15): time a user waits for nothing. A command whose store is
closed and whose output is written calls `request()`; the program's entry point (`core/cli.py` `entry`) then
calls `exit_now`: the atexit handlers still run (Ray, logging, temporary files, weakref finalizers), stdout and
stderr are flushed, and `os._exit` ends the process. Only the entry point does this: `main()` called in a
process that goes on (tests, other programs) returns as before.
"""

from __future__ import annotations

import atexit
import os
import sys

_requested = False


def request() -> None:
    """Ask the entry point to end the process quickly once the command returns successfully."""
    global _requested
    _requested = True


def requested() -> bool:
    return _requested


def exit_now(code: int = 0) -> None:
    """Run the atexit handlers, flush the standard streams and end the process with `code`."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing left to save there
            pass
    os._exit(code)
