"""`revprompt analyze --ray` (issue 16): the same rows as a local batch, actors that die, a driver that dies.

A local Ray runs on 127.0.0.1 with 2 CPUs and no dashboard for the whole module. The engine is the tiny
random-weight Gemma 3 saved to disk (tests/conftest.py), in float32 on the CPU with one thread, so a local
run and a Ray run decode the same tokens and can be compared row for row. Skipped where Ray is not installed
(`pip install 'revprompt[ray]'`; scripts/setup.sh installs it).
"""

from __future__ import annotations

import io
import json
import logging
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

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.timeout(300)  # a hung cluster fails the test instead of holding the suite

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "site"))

from sitefixture import FakeDataForSEO, SiteServer  # noqa: E402

from revprompt.core.store import Store  # noqa: E402

ENGINE_ARGS = ["--dtype", "float32", "--device", "cpu", "--max-new-tokens", "6", "--no-plugins", "--batch-docs", "2"]
TOPICS = [
    "sleep",
    "gardening",
    "bread",
    "running",
    "tax returns",
    "python decorators",
    "coffee",
    "chess openings",
    "budget travel",
    "houseplants",
    "public speaking",
    "knife sharpening",
    "bird watching",
    "sourdough",
    "cycling",
    "note taking",
]
DOC_COLUMNS = [
    "status",
    "error",
    "title",
    "text",
    "source",
    "http_status",
    "content_type",
    "n_input_tokens",
    "truncated",
    "canonical",
    "content_hash",
    "duplicate_of",
]
PROGRESS = re.compile(r"^revprompt: \[\d+/\d+\] (done|failed|duplicate) ")


def text_for(topic: str, i: int) -> str:
    return (
        f"Here are some tips about {topic}. First, start small and keep at it every day; tip number {i} is "
        f"to write down what works. Second, ask someone who knows {topic} well. Third, review your progress "
        "each week and adjust."
    )


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray on 127.0.0.1, 2 CPUs, no dashboard; its GCS address (for drivers in subprocesses)."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        object_store_memory=300 * 1024 * 1024,
        log_to_driver=False,
        logging_level=logging.ERROR,
    )
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture
def one_thread():
    """The local run decodes with one thread, like each 1-CPU actor: the same float operations, the same tokens."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("texts")
    for i, topic in enumerate(TOPICS[:10]):
        (path / f"{i:02d}-{topic.replace(' ', '-')}.txt").write_text(text_for(topic, i))
    (path / "10-copy.txt").write_text(text_for(TOPICS[3], 3))  # a copy: stored as a duplicate, not analysed
    return path


def revprompt(*args) -> tuple[int, str, str]:
    """`revprompt ARGS...` in this process (a Ray already initialised here is the one --ray uses)."""
    import contextlib
    import io

    from revprompt.core.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            main([*map(str, args)])
        except SystemExit as exc:
            code = exc.code or 0
    assert "Traceback" not in err.getvalue(), err.getvalue()
    return code, out.getvalue(), err.getvalue()


def analyze(*args) -> tuple[int, str]:
    code, _, err = revprompt("analyze", *args)
    return code, err


def table(db: str, base: str = "") -> dict[str, dict]:
    """uri -> the document's columns, its candidates and their tokens (ids left out: they are per-file)."""
    with Store(db, read_only=True) as store:
        docs = store.documents()
        assert len({d["uri"] for d in docs}) == len(docs), "a document was stored twice"
        out = {}
        for d in docs:
            cands = []
            for c in store.candidates(d["doc_id"]):
                tokens = [
                    (t["position"], t["token_id"], t["token"], t["prob"])
                    for t in store.candidate_tokens(c["candidate_id"])
                ]
                cands.append(
                    {
                        k: c[k]
                        for k in (
                            "rank",
                            "prompt",
                            "perplexity",
                            "mean_nll",
                            "confidence",
                            "top_k",
                            "penalty_alpha",
                            "configs",
                            "n_tokens",
                        )
                    }
                    | {"tokens": tokens}
                )
            row = {k: d[k] for k in DOC_COLUMNS}
            if row["duplicate_of"]:
                row["duplicate_of"] = row["duplicate_of"].replace(base, "")
            out[d["uri"].replace(base, "")] = row | {"candidates": cands}
    return out


def assert_same_rows(local: dict, remote: dict) -> None:
    import copy

    local, remote = copy.deepcopy(local), copy.deepcopy(remote)
    assert sorted(local) == sorted(remote)
    for uri in local:
        a, b = local[uri], remote[uri]
        ca, cb = a.pop("candidates"), b.pop("candidates")
        assert a == b, uri
        assert len(ca) == len(cb), uri
        for x, y in zip(ca, cb):
            tx, ty = x.pop("tokens"), y.pop("tokens")
            for key in ("perplexity", "mean_nll", "confidence"):
                assert x.pop(key) == pytest.approx(y.pop(key), rel=1e-5), (uri, key)
            assert x == y, uri
            assert [t[:3] for t in tx] == [t[:3] for t in ty], uri
            assert [t[3] for t in tx] == pytest.approx([t[3] for t in ty], rel=1e-5, abs=1e-7), uri


def test_folder_gives_the_same_rows_as_a_local_run(
    ray_cluster, folder, tiny_model_dir, tmp_path, one_thread, monkeypatch
):
    local_db, ray_db = tmp_path / "local.duckdb", tmp_path / "ray.duckdb"
    code, err = analyze(folder, "--model", tiny_model_dir, "--db", local_db, *ENGINE_ARGS)
    assert code == 0, err
    shards = tmp_path / "shards"
    import pyarrow.parquet as pq

    written_here = []  # Parquet files this process (the driver) writes: none, the actors write the shards
    write_table = pq.write_table
    monkeypatch.setattr(
        pq, "write_table", lambda rows, where, **kw: written_here.append(where) or write_table(rows, where, **kw)
    )
    code, err = analyze(
        folder, "--model", tiny_model_dir, "--db", ray_db, *ENGINE_ARGS, "--ray", "--output-parquet", shards
    )
    assert code == 0, err
    assert written_here == []
    assert sorted(p.name for p in shards.iterdir()) == ["candidate_tokens", "candidates", "documents", "runs"]
    assert not list(shards.rglob(".*"))  # no shard left half-written
    assert re.search(r"run \w+: 10 done, 0 failed, 1 duplicates", err), err
    local, remote = table(str(local_db)), table(str(ray_db))
    assert sum(r["status"] == "done" and len(r["candidates"]) > 0 for r in remote.values()) == 10
    assert_same_rows(local, remote)

    # The Parquet shards hold the same rows: queried in place, and imported into another file (twice: no doubles).
    code, out, err = revprompt(
        "sql", "--parquet", shards, "--json", "SELECT count(*) AS n, count(DISTINCT uri) AS uris FROM documents"
    )
    assert code == 0, err
    assert '"n": 11' in out and '"uris": 11' in out, out
    code, out, err = revprompt("sql", "--parquet", shards, "--json", "SELECT status FROM runs")
    assert code == 0 and [json.loads(x) for x in out.splitlines()] == [{"status": "finished"}], err  # as it ended
    imported = tmp_path / "imported.duckdb"
    for _ in range(2):
        code, _, err = revprompt("import", shards, "--db", imported)
        assert code == 0, err
    assert "0 documents" in err, err
    assert table(str(imported)) == remote


def test_site_gives_the_same_rows_as_a_local_run(ray_cluster, tiny_model_dir, tmp_path, one_thread):
    """Pages are fetched by the actors here (a sitemap index over a loopback site, faults included). The timeout
    leaves an ordinary page room on a loaded machine (0.5 s once timed one out beside a training run); only
    /slow, which answers after 4 s, must run into it."""
    with SiteServer(slow_seconds=4.0) as site:
        args = [site.url("/sitemap_index.xml"), "--model", tiny_model_dir, *ENGINE_ARGS, "--timeout", "1.5"]
        code, err = analyze(*args, "--db", tmp_path / "local.duckdb")
        assert code == 0, err
        code, err = analyze(*args, "--db", tmp_path / "ray.duckdb", "--ray")
        assert code == 0, err
        local, remote = (
            table(str(tmp_path / "local.duckdb"), site.base_url),
            table(str(tmp_path / "ray.duckdb"), site.base_url),
        )
    assert {p for p, r in remote.items() if r["status"] == "failed"} >= {"/missing", "/error", "/slow", "/image"}
    assert remote["/missing"]["error"] == "HTTP 404"
    assert sum(r["status"] == "done" for r in remote.values()) >= 5
    assert_same_rows(local, remote)


class KillOneActor:
    """Progress object: after the first saved document, SIGKILL the process of an actor that has work in flight."""

    def __init__(self):
        self.runner = None
        self.killed: int | None = None

    def start(self, total, skipped=0, estimated=False):
        pass

    def skip(self, uri=None):
        pass

    def advance(self, doc):
        if self.killed is None:
            busy = [w for w in self.runner.workers if w.ready and w.analyses > 0]
            assert busy
            self.killed = ray.get(busy[0].handle.pid.remote())
            os.kill(self.killed, signal.SIGKILL)

    def finish(self):
        pass


def test_a_killed_actor_loses_nothing(ray_cluster, tmp_path, tiny_model_dir):
    from revprompt.core.analyze_command import engine_description
    from revprompt.core.ray_runner import RayBatchRunner, RaySettings

    texts = tmp_path / "texts"
    texts.mkdir()
    for i, topic in enumerate(TOPICS):
        (texts / f"{i:02d}.txt").write_text(text_for(topic, i))
    progress = KillOneActor()
    with Store(str(tmp_path / "kill.duckdb")) as store:
        runner = RayBatchRunner(
            store,
            dict(model=tiny_model_dir, dtype="float32", device="cpu", max_new_tokens=12, batch_docs=2),
            engine_description(tiny_model_dir, "float32", max_new_tokens=12),
            analyzers=[],
            options={"concurrency": 2},
            progress=progress,
            settings=RaySettings(actors=2),
        )
        progress.runner = runner
        summary = runner.run("analyze texts", [str(texts)])
        docs = store.documents(summary.run_id)
    assert progress.killed is not None
    assert runner.deaths >= 1 and runner.retried >= 1
    assert len(docs) == len(TOPICS) == len({d["uri"] for d in docs})  # every target exactly one row
    assert all(d["status"] == "done" for d in docs), [(d["uri"], d["status"], d["error"]) for d in docs]
    assert summary.done == len(TOPICS)


def test_a_killed_driver_resumes_with_nothing_lost_or_twice(ray_cluster, tmp_path, tiny_model_dir):
    texts = tmp_path / "texts"
    texts.mkdir()
    for i in range(30):
        (texts / f"{i:02d}.txt").write_text(text_for(TOPICS[i % len(TOPICS)], i))
    db = tmp_path / "resume.duckdb"
    cmd = [
        sys.executable,
        "-m",
        "revprompt",
        "analyze",
        str(texts),
        "--model",
        tiny_model_dir,
        "--db",
        str(db),
        "--dtype",
        "float32",
        "--device",
        "cpu",
        "--max-new-tokens",
        "12",
        "--no-plugins",
        "--batch-docs",
        "1",
        "--ray",
        ray_cluster,
        "--ray-actors",
        "1",
        "--output-parquet",
        str(tmp_path / "shards"),
    ]
    env = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    env.pop("RAY_ADDRESS", None)

    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr] + [lines.put(None)], daemon=True).start()
    seen, tail, deadline = 0, [], time.monotonic() + 120
    while seen < 5:
        assert time.monotonic() < deadline, "no progress from the driver:\n" + "".join(tail[-20:])
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        assert line is not None, "the driver ended before it was killed:\n" + "".join(tail[-20:])
        tail.append(line)
        seen += bool(PROGRESS.match(line))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)

    with Store(str(db), read_only=True) as store:
        before = {d["uri"] for d in store.documents()}
    assert 5 <= len(before) < 30, "the driver was not killed mid-run"

    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Traceback" not in again.stderr
    m = re.search(r"run (\w+): (\d+) done, 0 failed(?:, (\d+) duplicates[^,]*)?, (\d+) already done", again.stderr)
    assert m, again.stderr[-2000:]
    assert int(m.group(4)) == len(before)  # what was stored before the kill is not analysed again
    with Store(str(db), read_only=True) as store:
        docs = store.documents()
        _, runs = store.query("SELECT run_id, status FROM runs")
    assert runs == [(m.group(1), "finished")]  # the same run, resumed
    assert len(docs) == 30 == len({d["uri"] for d in docs})  # nothing lost, nothing twice
    assert all(d["status"] in ("done", "duplicate") for d in docs)
    imported = tmp_path / "imported.duckdb"  # the shards written across the kill: the same 30 documents, once each
    code, _, err = revprompt("import", tmp_path / "shards", "--db", imported)
    assert code == 0 and "30 documents" in err, err
    assert table(str(imported)) == table(str(db))


class HangingDataForSEO(FakeDataForSEO):
    """The loopback DataForSEO API, where a page whose URL has 'hang' gets no answer until `release` is set: a
    DataForSEO load runs in the driver's threads under --ray too (its account is the driver's)."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()
        self.waiting = 0

    def _handler(self):
        api, base = self, super()._handler()

        class Handler(base):
            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if b"hang" in raw:
                    api.waiting += 1
                    api.release.wait(120)
                    api.waiting -= 1
                self.rfile = io.BytesIO(raw)
                super().do_POST()

        return Handler


@pytest.mark.timeout(400)
def test_ctrl_c_stops_a_ray_batch_within_two_seconds_and_the_rerun_resumes(ray_cluster, tmp_path, tiny_model_dir):
    """SIGINT to `revprompt analyze --ray` while driver threads wait on pages that do not come: it exits
    within 2 s with code 130, the run marked 'interrupted' with the analysed pages kept; the rerun resumes it."""
    fast = [f"https://example.com/fast-{i}" for i in range(4)]  # two groups of --batch-docs 2, saved first
    hang = [f"https://example.com/hang-{i}" for i in range(4)]  # hold all four --concurrency threads
    db = tmp_path / "interrupt.duckdb"
    config = tmp_path / "config.toml"
    config.write_text("[dataforseo]\nretry_backoff = 0.01\n")
    with HangingDataForSEO() as api:
        env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
        env.pop("RAY_ADDRESS", None)
        env.update(
            PYTHONUNBUFFERED="1",
            OMP_NUM_THREADS="1",
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            TOKENIZERS_PARALLELISM="false",
            REVPROMPT_CONFIG=str(config),
            DATAFORSEO_LOGIN=api.login,
            DATAFORSEO_PASSWORD=api.password,
            REVPROMPT_DATAFORSEO_BASE_URL=api.base_url,
        )
        cmd = [sys.executable, "-m", "revprompt", "analyze", "--source", "dataforseo", *fast, *hang]
        cmd += ["--model", tiny_model_dir, "--db", str(db), *ENGINE_ARGS, "--concurrency", "4"]
        cmd += ["--ray", ray_cluster, "--ray-actors", "1"]

        def default_sigint():
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # a shell may start a background job with SIGINT ignored

        proc = subprocess.Popen(
            cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env, preexec_fn=default_sigint
        )
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr] + [lines.put(None)], daemon=True).start()
        tail: list[str] = []
        deadline = time.monotonic() + 240
        while sum(map(bool, map(PROGRESS.match, tail))) < len(fast) or api.waiting < len(hang):
            assert time.monotonic() < deadline, "never reached the hanging pages:\n" + "".join(tail[-20:])
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            assert line is not None, "the driver ended before the signal:\n" + "".join(tail[-20:])
            tail.append(line)
        time.sleep(0.3)
        signalled = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        took = time.monotonic() - signalled
        while (line := lines.get(timeout=10)) is not None:
            tail.append(line)
        assert took < 2.0, f"exit took {took:.2f}s after SIGINT:\n" + "".join(tail[-20:])
        assert proc.returncode == 130, "".join(tail[-20:])
        assert "Traceback" not in "".join(tail)
        with Store(str(db), read_only=True) as store:
            (run_id, status), *_ = store.query("SELECT run_id, status FROM runs")[1]
            saved = {d["uri"]: d["status"] for d in store.documents()}
        assert status == "interrupted"
        assert re.match(rf"revprompt: interrupted; run {run_id} keeps the documents", tail[-1]), tail[-1]
        assert saved == dict.fromkeys(fast, "done")  # analysed on the actor and saved before the signal, kept

        api.release.set()
        again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert again.returncode == 0, again.stderr[-3000:]
    m = re.search(r"run (\w+): (\d+) done, 0 failed.*, (\d+) already done", again.stderr)
    assert m and m.groups() == (run_id, str(len(hang)), str(len(fast))), again.stderr[-2000:]
    with Store(str(db), read_only=True) as store:
        _, runs = store.query("SELECT run_id, status FROM runs")
        docs = store.documents()
    assert runs == [(run_id, "finished")]
    assert sorted(d["uri"] for d in docs) == sorted(fast + hang) and {d["status"] for d in docs} == {"done"}
    assert all(api.attempts[url] == 1 for url in fast)  # saved before the signal: never fetched again
