"""`datagen responses --batch`: the Gemini Batch API through the real google-genai client, on a loopback server."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from fixtures.datagen.fake_gemini import thinking_of
from fixtures.datagen.helpers import API_KEY, fake, gemini_args, gemini_env, query, run_cli  # noqa: F401

pytestmark = pytest.mark.timeout(120)


def prompts(capsys, fake, db, n=4):
    code, _, err = run_cli(capsys, "datagen", "prompts", *gemini_args(fake, db, "-n", str(n), "-c", "simple_prompt"))
    assert code == 0, err
    fake.requests.clear()


def batch(capsys, fake, db, *extra):
    return run_cli(capsys, "datagen", "responses", *gemini_args(fake, db, "--yes", "--batch", "--poll", "0.05", *extra))


def batch_creates(fake) -> int:
    return len(fake.batch_jobs)


def test_batch_answers_everything_in_one_job_at_half_price(capsys, gemini_env, fake, tmp_path):
    db = tmp_path / "d.duckdb"
    prompts(capsys, fake, db, 6)
    fake.batch_polls = 2
    code, out, err = batch(capsys, fake, db)
    assert code == 0, err
    assert batch_creates(fake) == 1 and fake.batch_gets == 3
    job = fake.batch_jobs["job1"]
    assert job["headers"]["x-goog-api-key"] == API_KEY
    sent = fake.batch_requests()
    assert len(sent) == 6 and all(r["path"].endswith("/models/gemini-2.5-flash:batchGenerateContent") for r in sent)
    assert all(
        thinking_of(r) == {"thinkingBudget": 0} and r["body"]["generationConfig"]["maxOutputTokens"] == 2048
        for r in sent
    )
    pairs = query(
        db,
        "SELECT p.prompt, r.response, r.finish_reason, r.input_tokens FROM datagen_pairs r "
        "JOIN datagen_prompts p USING (prompt_id)",
    )
    assert len(pairs) == 6 and all(
        resp == f"Answer to: {p}" and fin == "STOP" and tok == 11 for p, resp, fin, tok in pairs
    )
    assert query(db, "SELECT name, stage, state, finished_at IS NOT NULL FROM datagen_batch_jobs") == [
        ("batches/job1", "responses", "JOB_STATE_SUCCEEDED", True)
    ]
    assert "submitted batch job batches/job1" in err and "JOB_STATE_SUCCEEDED" in err
    assert "6 answered" in out and "(batch: half price)" in out
    out_tokens = query(db, "SELECT sum(output_tokens) FROM datagen_pairs")[0][0]
    assert f"cost ${(66 * 0.30 + out_tokens * 2.50) / 1e6 * 0.5:,.4f}" in out
    code, out, _ = batch(capsys, fake, db)
    assert code == 0 and "nothing to do" in out and batch_creates(fake) == 1


def test_rejected_batch_answers_are_asked_again_in_a_second_job(capsys, gemini_env, fake, tmp_path):
    db = tmp_path / "d.duckdb"
    prompts(capsys, fake, db, 4)
    fake.faults.extend(["empty", "blocked", 500])  # first three requests of the first job
    code, out, err = batch(capsys, fake, db)
    assert code == 0, err
    assert batch_creates(fake) == 2
    assert len(fake.batch_jobs["job2"]["output"]) == 2  # the empty answer and the 500, not the blocked prompt
    assert query(db, "SELECT count(*) FROM datagen_pairs") == [(3,)]
    assert sorted(query(db, "SELECT kind, permanent FROM datagen_errors")) == [
        ("batch_500", False),
        ("blocked", True),
        ("empty", False),
    ]
    assert "3 answered" in out and "1 failed for good" in out and "on rejected or blocked answers" in out


def test_a_failed_job_is_reported_and_the_rerun_submits_again(capsys, gemini_env, fake, tmp_path):
    db = tmp_path / "d.duckdb"
    prompts(capsys, fake, db, 3)
    fake.batch_final_state = "BATCH_STATE_FAILED"
    code, out, err = batch(capsys, fake, db)
    assert code == 1 and "3 prompts failed" in err and "Traceback" not in err
    assert batch_creates(fake) == 1  # a failed job is not resubmitted in the same run
    assert query(db, "SELECT count(*) FROM datagen_pairs") == [(0,)]
    assert ("responses", "batch_failed") in query(db, "SELECT stage, kind FROM datagen_errors")
    assert "3 prompts still unanswered" in out
    fake.batch_final_state = "BATCH_STATE_SUCCEEDED"
    jobs_before = batch_creates(fake)
    code, out, err = batch(capsys, fake, db)
    assert code == 0, err
    assert batch_creates(fake) == jobs_before + 1
    assert query(db, "SELECT count(*) FROM datagen_pairs") == [(3,)]


def test_killed_while_waiting_the_rerun_collects_the_same_job(capsys, gemini_env, fake, tmp_path):
    db = tmp_path / "d.duckdb"
    prompts(capsys, fake, db, 5)
    fake.batch_polls = 10**9  # the job stays RUNNING while the first run waits
    cmd = [
        sys.executable,
        "-m",
        "revprompt",
        "datagen",
        "responses",
        *gemini_args(fake, db, "--yes", "--batch", "--poll", "0.05"),
    ]
    proc = subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while fake.batch_gets < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.kill()
    _, err = proc.communicate(timeout=30)
    assert fake.batch_gets >= 3, err
    assert batch_creates(fake) == 1
    assert query(db, "SELECT name, finished_at FROM datagen_batch_jobs") == [("batches/job1", None)]

    fake.batch_jobs["job1"]["polls_left"] = 0  # Google finishes the job while nobody waits
    code, out, err = batch(capsys, fake, db)
    assert code == 0, err
    assert batch_creates(fake) == 1  # nothing submitted twice
    assert "picking up 1 batch job" in err
    assert query(db, "SELECT count(*), count(DISTINCT prompt_id) FROM datagen_pairs") == [(5, 5)]
    assert query(db, "SELECT state FROM datagen_batch_jobs") == [("JOB_STATE_SUCCEEDED",)]
