"""`revprompt analyze` over the loopback site: the sitemap batch through the CLI, and kill -9 then resume.

The kill test runs the real command in a subprocess with a tiny random-weight model saved to disk, so it
exercises model loading, the store's transactions and DuckDB's recovery after a hard kill.
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
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "site"))

from sitefixture import FAULTS, GOOD_PAGES, SiteServer  # noqa: E402

from revprompt.core.store import Store  # noqa: E402
from revprompt.core.types import Candidate, DecodeConfig, SweepResult  # noqa: E402

EXPECTED_FAILURES = {
    "/slow": "timed out after 0.5s waiting for the server",
    "/missing": "HTTP 404",
    "/error": "HTTP 500",
    "/loop": "too many redirects (more than 5)",
    "/image": "not a text/HTML page (image/png)",
    "/huge": "page larger than 5 MB",
    "/empty": "no text found on the page",
}
PROGRESS_LINE = re.compile(r"^revprompt: \[(\d+)/(\d+)\] (done|failed|duplicate) (https?://\S+?)(?:: |  \(| \(of )")
# The loopback pages whose text is another's, listed after it: stored as duplicates, not analysed again.
COPIES = {"/latin1-meta": "/latin1", "/redirect": "/about"}


class QuickEngine:
    def sweep(self, text: str, kind: str = "response") -> SweepResult:
        cand = Candidate(
            prompt="Describe the garden",
            token_ids=[5],
            tokens=["x"],
            token_probs=[0.9],
            perplexity=1.5,
            mean_nll=0.4,
            configs=[DecodeConfig(4, 0.2)],
            rank=1,
        )
        return SweepResult([cand], n_input_tokens=len(text.split()), truncated=False)


@pytest.fixture(scope="module")
def site():
    with SiteServer(slow_seconds=2.0) as server:
        yield server


def rows_by_path(db: str, site) -> dict[str, dict]:
    with Store(db, read_only=True) as store:
        docs = store.documents()
    uris = [d["uri"] for d in docs]
    assert len(uris) == len(set(uris)), "duplicate documents"
    return {d["uri"].replace(site.base_url, ""): d for d in docs}


def test_cli_sitemap_batch(site, tmp_path, monkeypatch, capsys):
    from revprompt.core.cli import main
    from revprompt.core.engine import Engine

    monkeypatch.setattr(Engine, "load", classmethod(lambda cls, *a, **k: QuickEngine()))
    db = str(tmp_path / "site.duckdb")
    try:
        main(["analyze", site.url("/sitemap_index.xml"), "--db", db, "--no-plugins", "--timeout", "0.5"])
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr().err
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    assert re.search(r"run \w+: 7 done, 8 failed, 2 duplicates", out.err)
    rows = rows_by_path(db, site)
    assert set(rows) == set(GOOD_PAGES + FAULTS) | {"/sitemaps/missing.xml"}
    assert {p: r["error"] for p, r in rows.items() if r["status"] == "failed"} == {
        **EXPECTED_FAILURES,
        "/sitemaps/missing.xml": "sitemap: HTTP 404",
    }
    assert all(rows[p]["status"] == "done" for p in GOOD_PAGES if p not in COPIES)
    assert {p: rows[p]["duplicate_of"] for p in COPIES} == {p: site.url(c) for p, c in COPIES.items()}


def _reader(stream, lines: queue.Queue):
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)


@pytest.mark.timeout(900)
def test_kill_minus_9_then_rerun_completes_without_duplicates(site, tmp_path, tiny_model_dir):
    paths = [
        "/",
        "/missing",
        "/about",
        "/image",
        "/blog/",
        "/slow",
        "/blog/first-post",
        "/error",
        "/latin1",
        "/loop",
        "/blog/second-post",
        "/huge",
        "/notes.txt",
        "/empty",
        "/latin1-meta",
        "/redirect",
    ]
    assert set(paths) == set(GOOD_PAGES + FAULTS)
    urls = tmp_path / "urls.txt"
    urls.write_text(
        "# the loopback site, faults included\n" + "\n".join(site.url(p) for p in paths) + f"\n{site.url('/about')}\n"
    )  # a repeat: still one row
    db = str(tmp_path / "kill.duckdb")
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
        "--max-new-tokens",
        "6",
        "--no-plugins",
        "--timeout",
        "0.5",
        "--concurrency",
        "2",
    ]
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
    }
    env.pop("REVPROMPT_DB", None)
    site.hits.clear()

    # First run: kill -9 once a few documents are stored (the progress lines come after each commit).
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stderr, lines), daemon=True).start()
    stored, log = [], []
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=5)
            except queue.Empty:
                continue
            if line is None:
                break
            log.append(line)
            m = PROGRESS_LINE.match(line)
            if m:
                stored.append((m.group(3), m.group(4)))
                if len(stored) >= 3 and any(status == "done" for status, _ in stored):
                    os.kill(proc.pid, signal.SIGKILL)
                    break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "\n".join(log[-20:])
    assert len(stored) < len(paths), "the first run finished before it could be killed"
    hits_after_kill = dict(site.hits)

    # Second run: the same command picks up the interrupted run and does only what is left.
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    assert re.search(rf"\d+ done, \d+ failed(, \d+ duplicates [^,]*)?, {len(stored)} already done", done.stderr), (
        done.stderr[-2000:]
    )

    rows = rows_by_path(db, site)
    assert set(rows) == set(paths)  # one row per URL: none missing, none twice
    for path in paths:
        if path in EXPECTED_FAILURES:
            assert (rows[path]["status"], rows[path]["error"]) == ("failed", EXPECTED_FAILURES[path])
        elif path in COPIES:
            assert (rows[path]["status"], rows[path]["duplicate_of"]) == ("duplicate", site.url(COPIES[path]))
        else:
            assert rows[path]["status"] == "done", (path, rows[path]["error"])
    with Store(db, read_only=True) as store:
        _, runs = store.query("SELECT status FROM runs")
        _, orphans = store.query(
            "SELECT count(*) FROM candidates c LEFT JOIN documents d USING (doc_id) WHERE d.doc_id IS NULL"
        )
        _, cands = store.query("SELECT count(DISTINCT doc_id) FROM candidates")
    assert runs == [("finished",)]  # the re-run resumed the killed run instead of starting another
    assert orphans == [(0,)]
    assert cands[0][0] == sum(1 for r in rows.values() if r["status"] == "done")
    for _, uri in stored:  # stored before the kill: not fetched again
        path = uri.replace(site.base_url, "")
        if path != "/about":  # /redirect lands on /about, so /about's count can grow through it
            assert site.hits[path] == hits_after_kill[path], path
