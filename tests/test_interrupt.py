"""Ctrl-C during a batch (issue 13): `revprompt analyze --urls` as a real subprocess over a loopback site whose
last pages hang or drip bytes, interrupted with SIGINT while those fetches are in flight.

It must exit within 2 s (fetch workers never hold the exit, whatever `--timeout` says), with exit code 130
and one line that names the run and how to go on (no traceback); the run is marked 'interrupted' and keeps
every document saved before the signal; re-running the same command resumes that run, fetches none of the
saved pages again and ends with one row per URL.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest

HERE = Path(__file__).resolve().parent
GUARD_DIR = HERE / "fixtures" / "loopback_only"
ENGINE_ARGS = ["--max-new-tokens", "2", "--max-input-tokens", "32", "--no-plugins"]
PROGRESS = re.compile(r"^revprompt: \[(\d+)/[^\]]*\] (done|failed|duplicate) (.*)$")
SUMMARY = re.compile(r"^run (\w+): (\d+) done, (\d+) failed(?:, (\d+) duplicates[^,]*)?(?:, (\d+) already done)?$")
FAST = [f"/fast/{i}" for i in range(8)]  # fewer than a group: analysed while the slow pages are in flight
DRIP = [f"/drip/{i}" for i in range(2)]  # headers, then a byte every 0.2 s until released
HANG = [f"/hang/{i}" for i in range(4)]  # no answer at all until released
EXIT_WITHIN_S = 2.0


def page(path: str) -> bytes:
    n = path.rsplit("/", 1)[1]
    kind = path.split("/")[1]
    return (
        f"<html><head><title>{kind} page {n}</title></head><body><h1>{kind.title()} page {n}</h1>"
        f"<p>This is the {kind} page number {n}. It tells how to water tomato plant {n} in a dry summer, "
        f"and why mulch keeps the soil of bed {n} moist for longer than bare earth does.</p></body></html>"
    ).encode()


class SlowSite:
    """Fast pages at once; hanging and dripping pages hold their connection until `release` is set."""

    def __init__(self):
        self.release = threading.Event()
        self.hits: Counter = Counter()
        self.waiting = 0  # slow requests being held right now
        self._lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                with site._lock:
                    site.hits[self.path] += 1
                body = page(self.path)
                kind = self.path.split("/")[1]
                try:
                    if kind == "hang":
                        site._hold(lambda: None)
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if kind == "drip":
                        sent = [0]

                        def drip():
                            if sent[0] < len(body) - 1:
                                self.wfile.write(body[sent[0] : sent[0] + 1])
                                self.wfile.flush()
                                sent[0] += 1
                            time.sleep(0.2)

                        site._hold(drip)
                        body = body[sent[0] :]
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _hold(self, step) -> None:
        with self._lock:
            self.waiting += 1
        try:
            deadline = time.monotonic() + 120
            while not self.release.wait(0.05) and time.monotonic() < deadline:
                step()
        finally:
            with self._lock:
                self.waiting -= 1

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_port}{path}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self._server.shutdown()
        self._server.server_close()


def loopback_env(tmp_path: Path) -> dict:
    """Offline, one thread, no proxies, and the loopback-only guard armed (as tests/test_reliability.py)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
        and k not in ("REVPROMPT_DB", "REVPROMPT_MODEL")
    }
    env.update(
        PYTHONUNBUFFERED="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        REVPROMPT_LOOPBACK_ONLY=str(tmp_path / "network.log"),
        PYTHONPATH=os.pathsep.join([str(GUARD_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]),
    )
    return env


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a shell may start a background job with SIGINT ignored


class Analyze:
    """One `revprompt analyze` subprocess, its stderr read line by line as it comes."""

    def __init__(self, cmd: list[str], env: dict, cwd: Path):
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            text=True,
            encoding="utf-8",
            errors="backslashreplace",
            preexec_fn=_default_sigint,
        )
        self.lines: queue.Queue = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def progress(self) -> list[tuple[str, str]]:
        return [(m.group(2), m.group(3)) for m in map(PROGRESS.match, self.stderr) if m]

    def pump(self, timeout: float = 0.05) -> bool:
        """Take the stderr lines that have come; False once stderr is closed."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            return True
        while True:
            if line is None:
                return False
            self.stderr.append(line)
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return True

    def finish(self, limit: float = 300) -> Analyze:
        deadline = time.monotonic() + limit
        while self.pump(0.5):
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail("revprompt ran too long:\n" + "\n".join(self.stderr[-30:]))
        self.proc.wait(timeout=30)
        self.stdout = self.proc.stdout.read()
        return self

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.stderr[-n:])


def db_rows(db: str):
    with duckdb.connect(db, read_only=True) as con:
        runs = con.execute("SELECT run_id, status FROM runs").fetchall()
        docs = con.execute("SELECT uri, status, error FROM documents ORDER BY doc_id").fetchall()
    return runs, docs


@pytest.mark.timeout(600)
def test_ctrl_c_exits_within_two_seconds_and_the_rerun_resumes(tmp_path, tiny_model_dir):
    with SlowSite() as site:
        paths = FAST + DRIP + HANG  # the workers end up held by both drips and two hangs
        urls = tmp_path / "urls.txt"
        urls.write_text("\n".join(site.url(p) for p in paths) + "\n")
        db = str(tmp_path / "interrupt.duckdb")
        cmd = [
            sys.executable,
            "-m",
            "revprompt",
            "analyze",
            "--urls",
            str(urls),
            "--db",
            db,
            "--model",
            tiny_model_dir,
            *ENGINE_ARGS,
            "--timeout",
            "90",
            "--concurrency",
            "4",
        ]
        env = loopback_env(tmp_path)

        run = Analyze(cmd, env, tmp_path)
        deadline = time.monotonic() + 300
        # Wait until the fast pages are stored and every fetch worker is held by a slow page.
        while len(run.progress()) < len(FAST) or site.waiting < 4:
            assert run.pump(), f"revprompt ended before the signal:\n{run.tail()}"
            assert time.monotonic() < deadline, f"never reached the slow pages:\n{run.tail()}"
        time.sleep(0.3)  # the main thread is now waiting on a hanging fetch
        signalled = time.monotonic()
        run.proc.send_signal(signal.SIGINT)
        try:
            run.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            run.proc.kill()
        took = time.monotonic() - signalled
        run.finish()
        assert took < EXIT_WITHIN_S, f"exit took {took:.2f}s after SIGINT:\n{run.tail()}"
        assert run.proc.returncode == 130, run.tail()
        text = "\n".join(run.stderr) + run.stdout
        assert "Traceback" not in text, text
        ((run_id, status),) = db_rows(db)[0]
        assert status == "interrupted"
        last = [line for line in run.stderr if line.strip()][-1]
        assert re.fullmatch(
            rf"revprompt: interrupted; run {run_id} keeps the documents it finished: re-run the "
            rf"same command \(or add --resume {run_id}\) to continue",
            last,
        ), last
        saved = db_rows(db)[1]
        assert [uri for uri, _, _ in saved] == [site.url(p) for p in FAST]  # all stored before the signal, kept
        assert all(status == "done" for _, status, _ in saved)
        assert {status for status, _ in run.progress()} == {"done"} and len(run.progress()) == len(FAST)
        hits_before = Counter(site.hits)

        # The same command again, the slow pages answering now: the interrupted run is resumed.
        site.release.set()
        again = Analyze(cmd, env, tmp_path).finish()
        assert again.proc.returncode == 0, again.tail()
        assert "Traceback" not in "\n".join(again.stderr) + again.stdout
        summary = next(m for m in map(SUMMARY.match, reversed(again.stderr)) if m)
        assert summary.group(1) == run_id
        assert (int(summary.group(2)), int(summary.group(3)), int(summary.group(5) or 0)) == (
            len(DRIP + HANG),
            0,
            len(FAST),
        )
        runs, docs = db_rows(db)
        assert runs == [(run_id, "finished")]
        assert sorted(uri for uri, _, _ in docs) == sorted(site.url(p) for p in paths)  # one row per URL
        assert all(status == "done" and error is None for _, status, error in docs), docs
        for p in FAST:  # stored before the signal: never fetched again
            assert site.hits[p] == hits_before[p] == 1, p
