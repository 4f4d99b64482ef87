"""The reliability run of issue 13 ("Done when"): input that must not stop or hang a batch, at scale.

`revprompt analyze --urls FILE` runs as a real subprocess over 1,000 URLs of a loopback site
(tests/fixtures/site/faultsite.py), a tenth of them hostile: servers that never answer or drip bytes, 5xx,
redirect loops and chains, redirects to private addresses, binary bodies, huge pages, gzip and deflate bombs,
broken connections, text in odd encodings, odd names in URLs, and lines that are no URL at all (`http://[::1/`).
The batch is killed with SIGKILL at three seeded random points and resumed each time by re-running the same
command. At the end the run holds exactly 1,000 rows, one per URL and none twice; every hostile URL has the row
its kind calls for (failed with its error, or analysed); every ordinary page is done with candidates; nothing
stored before a kill was fetched again after it.

robots.txt applies to crawls only (URL lists, sitemaps and single URLs are what the user asked for; see
docs/site-analysis.md), so a second, smaller run crawls the same site, killed once and resumed: pages robots.txt
disallows (linked, or reached by a redirect) and redirects off the crawled site become failed rows with their
errors, and neither is ever requested.

Both runs happen under a guard (tests/fixtures/loopback_only/sitecustomize.py) that refuses, and records, any
connection or name lookup beyond 127.0.0.1: the redirects to 10.0.0.1 and friends must be refused by revprompt
before it connects, and no traffic leaves the machine. The engine is a tiny random-weight model saved to disk,
decoding two tokens: what is tested is the batch, not the model.
"""

from __future__ import annotations

import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import unquote, urlsplit

import duckdb
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "fixtures" / "site"))

from faultsite import TIMEOUT_S, FaultSite, rid  # noqa: E402

GUARD_DIR = HERE / "fixtures" / "loopback_only"
SEED = 13
N_URLS = 1000
ENGINE_ARGS = ["--max-new-tokens", "2", "--max-input-tokens", "32", "--no-plugins"]
FETCH_ARGS = ["--timeout", str(TIMEOUT_S), "--concurrency", "8"]
PROGRESS = re.compile(r"^revprompt: \[(\d+)/[^\]]*\] (done|failed|duplicate) (.*)$")
RID = re.compile(r"rid(\d{4})")
SUMMARY = re.compile(r"^run (\w+): (\d+) done, (\d+) failed(?:, (\d+) duplicates[^,]*)?(?:, (\d+) already done)?$")


@pytest.fixture
def sites():
    with FaultSite() as elsewhere, FaultSite(elsewhere=elsewhere) as site:
        yield site, elsewhere


def loopback_env(tmp_path: Path) -> tuple[dict, Path]:
    """The subprocess environment: offline, one thread, no proxies, and the loopback-only guard armed."""
    netlog = tmp_path / "network.log"
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
        REVPROMPT_LOOPBACK_ONLY=str(netlog),
        PYTHONPATH=os.pathsep.join([str(GUARD_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]),
    )
    return env, netlog


def check_guard_is_armed(env: dict, netlog: Path) -> None:
    """The guard refuses a connection beyond loopback (and says so), so its silence later means something."""
    probe = subprocess.run(
        [sys.executable, "-c", "import socket; socket.create_connection(('10.0.0.1', 80), 0.5)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode != 0 and "loopback-only test guard" in probe.stderr, probe.stderr
    assert "blocked connect ('10.0.0.1', 80)" in netlog.read_text()
    netlog.unlink()


def network_log(netlog: Path) -> tuple[int, list[str]]:
    lines = netlog.read_text().splitlines() if netlog.exists() else []
    return sum(line.startswith("armed ") for line in lines), [line for line in lines if line.startswith("blocked")]


class Run:
    """One `revprompt analyze` subprocess: its progress lines (each printed after its document is committed),
    the rest of its stderr, and how it ended."""

    def __init__(self, cmd: list[str], env: dict, cwd: Path):
        self.started = time.monotonic()
        self.stdout = open(cwd / f"stdout-{time.monotonic_ns()}.txt", "w+")
        self.proc = subprocess.Popen(
            cmd,
            stdout=self.stdout,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            text=True,
            encoding="utf-8",
            errors="backslashreplace",
        )
        self.lines: queue.Queue = queue.Queue()
        self.stderr: list[str] = []
        self.progress: list[tuple[str, int | None, str]] = []  # (status, rid number, rest of the line)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _take(self, line: str) -> None:
        self.stderr.append(line)
        m = PROGRESS.match(line)
        if m:
            found = RID.search(unquote(m.group(3)))
            self.progress.append((m.group(2), int(found.group(1)) if found else None, m.group(3)))

    def wait(self, kill_after: int | None = None, jitter: float = 0.0, limit: float = 600.0) -> Run:
        """Read stderr to the end; with `kill_after`, SIGKILL the process `jitter` seconds after its
        `kill_after`-th progress line."""
        deadline = self.started + limit
        killed = False
        while True:
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"revprompt ran past {limit:.0f}s; last lines:\n" + "\n".join(self.stderr[-30:]))
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            self._take(line)
            if kill_after is not None and not killed and len(self.progress) >= kill_after:
                time.sleep(jitter)
                os.kill(self.proc.pid, signal.SIGKILL)
                killed = True
        self.proc.wait(timeout=60)
        self.seconds = time.monotonic() - self.started
        self.stdout.seek(0)
        self.output = self.stdout.read()
        self.stdout.close()
        assert "Traceback" not in "\n".join(self.stderr) + self.output, "\n".join(self.stderr[-40:])
        return self

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.stderr[-n:])


def rows_of(db: str) -> tuple[list[tuple], list[dict]]:
    with duckdb.connect(db, read_only=True) as con:
        runs = con.execute("SELECT run_id, status FROM runs").fetchall()
        cur = con.execute(
            "SELECT d.doc_id, d.run_id, d.uri, d.status, d.error, d.title, d.text, d.http_status, "
            "       (SELECT count(*) FROM candidates c WHERE c.doc_id = d.doc_id) AS n_candidates "
            "FROM documents d ORDER BY d.doc_id"
        )
        cols = [c[0] for c in cur.description]
        docs = [dict(zip(cols, r)) for r in cur.fetchall()]
    return runs, docs


def number_of(uri: str) -> int:
    found = RID.findall(unquote(uri))
    assert len(set(found)) == 1, f"no single rid in {uri!r}"
    return int(found[0])


@pytest.mark.timeout(1200)
def test_thousand_urls_with_a_hostile_tenth_killed_three_times_and_resumed(sites, tmp_path, tiny_model_dir):
    site, elsewhere = sites
    lines, plan = site.url_lines(N_URLS, seed=SEED)
    urls = tmp_path / "urls.txt"
    repeats = [line for n, line in enumerate(lines, start=1) if plan[n][0] == "page"][:5]
    # Comments, blank lines and repeated URLs are no targets: 1,000 distinct targets, one row each.
    urls.write_bytes(b"# reliability run: 1,000 URLs, a tenth hostile\n\n" + b"\n".join(lines + repeats) + b"\n")
    db = str(tmp_path / "reliability.duckdb")
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
        *FETCH_ARGS,
    ]
    env, netlog = loopback_env(tmp_path)
    check_guard_is_armed(env, netlog)

    rng = random.Random(SEED)
    kill_points = [rng.randint(40, 250)]
    kill_points += [kill_points[-1] + rng.randint(100, 300) for _ in range(2)]
    started = time.monotonic()
    runs: list[Run] = []
    committed: set[int] = set()  # numbers whose progress line was printed: stored before the next kill
    hits_at_kill: list[tuple[set[int], Counter]] = []
    for point in kill_points:
        run = Run(cmd, env, tmp_path).wait(kill_after=point - len(committed), jitter=rng.uniform(0, 0.4))
        runs.append(run)
        assert run.proc.returncode == -signal.SIGKILL, f"the run ended before the kill:\n{run.tail()}"
        assert run.progress, run.tail()
        committed |= {n for _, n, _ in run.progress}
        hits_at_kill.append((set(committed), Counter(site.hits)))
    final = Run(cmd, env, tmp_path).wait()
    runs.append(final)
    total_seconds = time.monotonic() - started
    assert final.proc.returncode == 0, final.tail()

    # Every progress line names one of the 1,000 URLs, and none comes twice across the four runs: nothing
    # stored before a kill was analysed again after it.
    printed = [n for run in runs for _, n, _ in run.progress]
    assert None not in printed
    assert len(printed) == len(set(printed)), Counter(printed).most_common(3)
    summary = next(SUMMARY.match(line) for line in reversed(final.stderr) if SUMMARY.match(line))
    done, failed, duplicates, already = (int(summary.group(i) or 0) for i in (2, 3, 4, 5))
    assert done + failed + duplicates + already == N_URLS, final.tail()
    assert already >= len(committed) and done + failed + duplicates == len(final.progress)

    # One run, finished, with exactly 1,000 rows: one per URL, none twice.
    runs_table, docs = rows_of(db)
    assert runs_table == [(summary.group(1), "finished")]
    assert len(docs) == N_URLS
    assert len({d["uri"] for d in docs}) == N_URLS
    by_number = {number_of(d["uri"]): d for d in docs}
    assert sorted(by_number) == list(range(1, N_URLS + 1))

    # Each row is what its URL calls for.
    wrong = []
    for n, doc in sorted(by_number.items()):
        kind, i = plan[n]
        want = site.expected(kind, i)
        got = (doc["status"], doc["error"])
        if want.status == "done":
            ok = doc["status"] == "done" and doc["error"] is None and doc["n_candidates"] > 0 and doc["text"]
        elif want.error is None:
            ok = doc["status"] == "failed" and bool(doc["error"]) and doc["n_candidates"] == 0
        else:
            error = doc["error"] or ""
            ok = (
                doc["status"] == "failed"
                and doc["n_candidates"] == 0
                and (error.startswith(want.error) if want.startswith else error == want.error)
            )
        if not ok:
            wrong.append((n, kind, doc["uri"][:90], got, want.error))
    assert not wrong, f"{len(wrong)} rows are not what their URLs call for:\n" + "\n".join(map(str, wrong[:40]))
    for n, doc in by_number.items():  # the ordinary pages are the pages served, titles and all
        if plan[n][0] == "page" and n % 10 != 7:
            assert doc["title"].startswith(f"Garden note {n}:"), (n, doc["title"])
            assert f"as note {n} says" in doc["text"]

    # Nothing stored before a kill was fetched again after it (a document in flight at the kill may be).
    for committed_then, hits_then in hits_at_kill:
        for n in committed_then:
            kind, _ = plan[n]
            if kind in ("malformed", "odd-name"):
                continue
            path = f"/page/{rid(n)}" if kind == "page" else f"/h/{kind}/{rid(n)}"
            assert site.hits[path] == hits_then[path], f"{path} fetched again after it was stored"
    refetched = sum(site.hits[f"/page/{rid(n)}"] - 1 for n in by_number if plan[n][0] == "page")
    assert refetched <= 3 * 24, refetched  # at most the documents in flight at each kill
    # The off-site redirects to another loopback port were followed (a URL list has no crawl scope) ...
    assert set(elsewhere.hits) == {f"/page/{rid(n)}" for n, (kind, _) in plan.items() if kind == "to-other-port"}
    # ... and those to private addresses refused before connecting: nothing left 127.0.0.1.
    armed, blocked = network_log(netlog)
    assert armed == len(runs) and blocked == [], blocked

    seconds = ", ".join(f"{r.seconds:.0f}s" for r in runs)
    print(
        f"\nreliability run: {N_URLS} URLs, kills after {kill_points} stored documents, runs took {seconds}, "
        f"{total_seconds:.0f}s in all; final run: {done} done, {failed} failed, {already} already done"
    )


@pytest.mark.timeout(600)
def test_crawl_with_robots_and_off_site_redirects_killed_and_resumed(sites, tmp_path, tiny_model_dir):
    site, elsewhere = sites
    expected = {path: (status, error) for path, status, error, _ in site.crawl_site()}
    db = str(tmp_path / "crawl.duckdb")
    cmd = [
        sys.executable,
        "-m",
        "revprompt",
        "analyze",
        "--crawl",
        site.url("/crawl/"),
        "--db",
        db,
        "--model",
        tiny_model_dir,
        "--max-pages",
        "1000",
        "--max-depth",
        "2",
        "--crawl-delay",
        "0",
        *ENGINE_ARGS,
        *FETCH_ARGS,
    ]
    env, netlog = loopback_env(tmp_path)

    rng = random.Random(SEED + 1)
    first = Run(cmd, env, tmp_path).wait(kill_after=rng.randint(20, 80), jitter=rng.uniform(0, 0.4))
    assert first.proc.returncode == -signal.SIGKILL, f"the crawl ended before the kill:\n{first.tail()}"
    second = Run(cmd, env, tmp_path).wait()
    assert second.proc.returncode == 0, second.tail()
    printed = [rest.split()[0] for run in (first, second) for _, _, rest in run.progress]
    assert len(printed) == len(set(printed)), Counter(printed).most_common(3)

    runs_table, docs = rows_of(db)
    assert len(runs_table) == 1 and runs_table[0][1] == "finished"
    paths = [urlsplit(d["uri"]).path for d in docs]
    assert len(paths) == len(set(paths)) == len(docs)
    assert set(paths) == set(expected), set(paths) ^ set(expected)
    wrong = [
        (p, d["status"], d["error"], expected[p])
        for p, d in zip(paths, docs)
        if (d["status"], d["error"]) != expected[p] or (d["status"] == "done") != (d["n_candidates"] > 0)
    ]
    assert not wrong, "\n".join(map(str, wrong))

    # robots.txt kept the crawl out of /crawl/private/, links and redirects alike; the redirects and links off
    # the site were not followed; nothing left 127.0.0.1.
    assert not [p for p in site.hits if p.startswith("/crawl/private/")]
    assert sum(elsewhere.hits.values()) == 0, elsewhere.hits
    assert site.hits["/robots.txt"] >= 1
    armed, blocked = network_log(netlog)
    assert armed == 2 and blocked == [], blocked
    print(f"\ncrawl run: {len(docs)} rows, runs took {first.seconds:.0f}s (killed) and {second.seconds:.0f}s")
