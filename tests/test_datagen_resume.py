"""Kill -9 a real `python -m revprompt datagen ...` halfway, re-run it, and check: no duplicates, no gaps."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from fixtures.datagen.fake_gemini import FakeGemini
from fixtures.datagen.helpers import gemini_env, query, run_cli  # noqa: F401

pytestmark = pytest.mark.timeout(180)

CATEGORIES = ["mid_tail_query", "long_tail_query", "simple_prompt", "typical_prompt", "detailed_prompt"]


def start(fake: FakeGemini, db, *argv: str) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "revprompt",
        "datagen",
        *argv,
        "--db",
        str(db),
        "--base-url",
        fake.base_url,
        "--backoff",
        "0.01",
        "--no-progress",
        "--yes",
    ]
    return subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_when_reached(fake: FakeGemini, proc: subprocess.Popen, served: int) -> None:
    fake.signal_after = served
    reached = fake.reached.wait(timeout=120)
    proc.kill()  # SIGKILL: no cleanup, no flush, whatever was in flight is lost
    _, err = proc.communicate(timeout=30)
    assert reached, f"the run never got to {served} calls: {err}"
    assert proc.returncode == -9, f"the run ended on its own before the kill: {err}"
    time.sleep(0.5)  # let the server finish reading any request the process sent just before it died


def test_prompts_killed_halfway_resume_without_duplicates_or_gaps(gemini_env, tmp_path, capsys):
    db = tmp_path / "kill.duckdb"
    per_category, batch = 60, 10  # 6 batches in each of 5 categories
    with FakeGemini(response_delay_s=0.1) as fake:
        proc = start(fake, db, "prompts", "-n", str(per_category), "--batch-size", str(batch), "--concurrency", "3")
        kill_when_reached(fake, proc, served=8)
        done_after_kill = query(db, "SELECT count(*) FROM datagen_batches")[0][0]
        assert 0 < done_after_kill < 30
        # A batch is stored whole or not at all: never a batch row without its prompts or half its prompts.
        assert query(
            db,
            "SELECT count(*) FROM datagen_batches b WHERE added <> (SELECT count(*) FROM "
            "datagen_prompts p WHERE p.category = b.category AND p.batch_no = b.batch_no)",
        ) == [(0,)]
        requests_before = len(fake.requests)

        proc = start(fake, db, "prompts", "-n", str(per_category), "--batch-size", str(batch), "--concurrency", "3")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert f"{done_after_kill} batches already done" in out
        # Only the missing batches were asked for again.
        assert len(fake.requests) - requests_before == 30 - done_after_kill

    batches = query(db, "SELECT category, batch_no FROM datagen_batches")
    assert sorted(batches) == sorted((c, i) for c in CATEGORIES for i in range(6))  # no gaps
    assert query(db, "SELECT count(*), count(DISTINCT prompt), count(DISTINCT prompt_key) FROM datagen_prompts") == [
        (300, 300, 300)  # no duplicates
    ]
    assert sorted(query(db, "SELECT category, count(*) FROM datagen_prompts GROUP BY category")) == sorted(
        (c, per_category) for c in CATEGORIES
    )


def test_responses_killed_halfway_resume_without_duplicates_or_gaps(gemini_env, tmp_path, capsys):
    db = tmp_path / "kill.duckdb"
    with FakeGemini() as fake:
        code, _, err = run_cli(
            capsys,
            "datagen",
            "prompts",
            "--db",
            db,
            "--base-url",
            fake.base_url,
            "-n",
            "30",
            "-c",
            "simple_prompt",
            "-c",
            "typical_prompt",
            "--no-progress",
        )
        assert code == 0, err
        fake.requests.clear()
        fake.response_delay_s = 0.15

        proc = start(fake, db, "responses", "--concurrency", "2")
        kill_when_reached(fake, proc, served=24)
        stored_after_kill = query(db, "SELECT count(*) FROM datagen_pairs")[0][0]
        assert 0 < stored_after_kill < 60
        requests_before = len(fake.requests)

        fake.response_delay_s = 0
        proc = start(fake, db, "responses", "--concurrency", "4")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert f"({stored_after_kill} before this run)" in out
        # The re-run asked exactly for the prompts without an answer.
        assert len(fake.requests) - requests_before == 60 - stored_after_kill

    assert query(db, "SELECT count(*), count(DISTINCT prompt_id) FROM datagen_pairs") == [(60, 60)]
    assert query(
        db,
        "SELECT count(*) FROM datagen_prompts p WHERE NOT EXISTS "
        "(SELECT 1 FROM datagen_pairs r WHERE r.prompt_id = p.prompt_id)",
    ) == [(0,)]
    assert query(
        db,
        "SELECT count(*) FROM datagen_pairs r JOIN datagen_prompts p USING (prompt_id) "
        "WHERE r.response <> 'Answer to: ' || p.prompt",
    ) == [(0,)]
