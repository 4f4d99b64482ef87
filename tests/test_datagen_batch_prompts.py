"""`datagen prompts --batch`: stage 1 on the Gemini Batch API through the real google-genai client, against the
loopback server of the datagen tests (fixtures/datagen/fake_gemini.py), which answers in the shapes the Batch
API documents: `models/{model}:batchGenerateContent` with `batch.inputConfig.requests.requests[]` of
{request, metadata}, an Operation whose metadata is the GenerateContentBatch, and
`output.inlinedResponses.inlinedResponses[]` of {response | error, metadata} in request order."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from fixtures.datagen.fake_gemini import MALFORMED_MARKER, thinking_of
from fixtures.datagen.helpers import API_KEY, fake, gemini_args, gemini_env, query, run_cli  # noqa: F401

pytestmark = pytest.mark.timeout(120)


def batch(capsys, fake, db, *extra):
    return run_cli(capsys, "datagen", "prompts", *gemini_args(fake, db, "--yes", "--batch", "--poll", "0.05", *extra))


def asked(request) -> int:
    return int(request["body"]["contents"][0]["parts"][0]["text"].split("Write exactly ")[1].split()[0])


def test_prompts_in_one_job_at_half_price_then_nothing_to_do(capsys, gemini_env, fake, tmp_path):
    db = tmp_path / "d.duckdb"
    fake.batch_polls = 2
    code, out, err = batch(capsys, fake, db, "-n", "250", "-c", "detailed_prompt")
    assert code == 0, err
    assert len(fake.batch_jobs) == 1 and fake.batch_gets == 3
    assert fake.batch_jobs["job1"]["headers"]["x-goog-api-key"] == API_KEY
    assert fake.batch_jobs["job1"]["displayName"] == "revprompt-datagen-prompts"
    sent = fake.batch_requests()
    assert sorted(asked(r) for r in sent) == [50, 100, 100]
    for request in sent:  # each inlined request is the interactive call's request, schema and all
        assert request["path"].endswith("/models/gemini-2.5-flash:batchGenerateContent")
        config = request["body"]["generationConfig"]
        assert config["responseMimeType"] == "application/json"
        assert config["responseSchema"]["properties"]["prompts"]["type"] == "ARRAY"
        assert thinking_of(request) == {"thinkingBudget": 0}
        assert request["body"]["systemInstruction"]["parts"][0]["text"]
    assert [r for r in fake.requests if not r.get("batch")] == []  # no interactive call
    assert query(db, "SELECT category, count(*) FROM datagen_prompts GROUP BY ALL") == [("detailed_prompt", 250)]
    assert sorted(query(db, "SELECT batch_no, requested, received FROM datagen_batches")) == [
        (0, 100, 100),
        (1, 100, 100),
        (2, 50, 50),
    ]
    jobs = query(
        db, "SELECT name, stage, state, json_array_length(keys), finished_at IS NOT NULL FROM datagen_batch_jobs"
    )
    assert jobs == [("batches/job1", "prompts", "JOB_STATE_SUCCEEDED", 3, True)]
    assert "submitted batch job batches/job1 (3 requests)" in err and "JOB_STATE_SUCCEEDED" in err
    assert "250 new from 3 calls" in out and "detailed_prompt 250/250" in out and "(batch: half price)" in out
    out_tokens = query(db, "SELECT sum(output_tokens) FROM datagen_batches")[0][0]
    assert f"cost ${(33 * 0.30 + out_tokens * 2.50) / 1e6 * 0.5:,.4f}" in out

    code, out, err = batch(capsys, fake, db, "-n", "250", "-c", "detailed_prompt")
    assert code == 0 and "nothing to do" in out and len(fake.batch_jobs) == 1


def test_rejected_answers_are_asked_again_in_a_second_job(capsys, gemini_env, fake, tmp_path):
    db = tmp_path / "d.duckdb"
    fake.faults.extend(["malformed", 500])  # the first two requests of the first job
    code, out, err = batch(capsys, fake, db, "-n", "30", "-c", "simple_prompt", "--batch-size", "10")
    assert code == 0, err
    assert len(fake.batch_jobs) == 2
    assert [asked(r) for r in fake.batch_requests() if r["batch"] == "batches/job2"] == [10, 10]
    assert query(db, "SELECT count(*), count(DISTINCT prompt_key) FROM datagen_prompts") == [(30, 30)]
    assert query(db, f"SELECT count(*) FROM datagen_prompts WHERE prompt LIKE '%{MALFORMED_MARKER}%'") == [(0,)]
    assert sorted(query(db, "SELECT kind, batch_no FROM datagen_errors")) == [("batch_500", 1), ("malformed_json", 0)]
    assert sorted(query(db, "SELECT batch_no, attempts FROM datagen_batches")) == [(0, 2), (1, 2), (2, 1)]
    assert "1 rejected answers" in out and "on rejected or blocked answers" in out


def test_top_up_jobs_fill_a_short_category_and_stop_when_the_model_repeats_itself(
    capsys, caplog, gemini_env, fake, tmp_path
):
    db = tmp_path / "d.duckdb"
    fake.prompt_mode = "repeat"
    code, out, err = batch(capsys, fake, db, "-n", "20", "-c", "mid_tail_query", "--batch-size", "10")
    assert code == 0, err
    assert len(fake.batch_jobs) == 2  # the plan, then one top-up that adds nothing: stop
    assert [asked(r) for r in fake.batch_requests() if r["batch"] == "batches/job2"] == [10]
    assert sorted(r[0] for r in query(db, "SELECT batch_no FROM datagen_batches")) == [0, 1, 2]
    assert "mid_tail_query 10/20" in out and "repeats itself" in caplog.text
    fake.prompt_mode = "unique"
    code, out, err = batch(capsys, fake, db, "-n", "20", "-c", "mid_tail_query", "--batch-size", "10")
    assert code == 0, err
    assert len(fake.batch_jobs) == 3 and "mid_tail_query 20/20" in out


def test_a_failed_job_is_reported_and_the_rerun_submits_again(capsys, gemini_env, fake, tmp_path):
    db = tmp_path / "d.duckdb"
    fake.batch_final_state = "BATCH_STATE_FAILED"
    code, out, err = batch(capsys, fake, db, "-n", "20", "-c", "typical_prompt", "--batch-size", "10")
    assert code == 1 and "2 calls failed" in err and "Traceback" not in err
    assert len(fake.batch_jobs) == 1 and query(db, "SELECT count(*) FROM datagen_prompts") == [(0,)]
    assert ("prompts", "batch_failed") in query(db, "SELECT stage, kind FROM datagen_errors")
    fake.batch_final_state = "BATCH_STATE_SUCCEEDED"
    code, out, err = batch(capsys, fake, db, "-n", "20", "-c", "typical_prompt", "--batch-size", "10")
    assert code == 0, err
    assert len(fake.batch_jobs) == 2 and query(db, "SELECT count(*) FROM datagen_prompts") == [(20,)]


def test_killed_while_waiting_the_rerun_collects_the_same_job_without_metadata(capsys, gemini_env, fake, tmp_path):
    db = tmp_path / "d.duckdb"
    fake.batch_polls = 10**9  # the job stays RUNNING while the first run waits
    fake.batch_echo_metadata = False  # the answers come back in request order, without their keys
    args = gemini_args(
        fake, db, "--yes", "--batch", "--poll", "0.05", "-n", "25", "-c", "long_tail_query", "--batch-size", "10"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "revprompt", "datagen", "prompts", *args],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while fake.batch_gets < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.kill()
    _, err = proc.communicate(timeout=30)
    assert fake.batch_gets >= 3, err
    assert len(fake.batch_jobs) == 1
    assert query(db, "SELECT name, stage, finished_at FROM datagen_batch_jobs") == [("batches/job1", "prompts", None)]

    fake.batch_jobs["job1"]["polls_left"] = 0  # Google finishes the job while nobody waits
    code, out, err = batch(capsys, fake, db, "-n", "25", "-c", "long_tail_query", "--batch-size", "10")
    assert code == 0, err
    assert "picking up 1 batch job" in err and len(fake.batch_jobs) == 1  # nothing submitted twice
    assert sorted(query(db, "SELECT batch_no, requested, received FROM datagen_batches")) == [
        (0, 10, 10),
        (1, 10, 10),
        (2, 5, 5),
    ]
    assert query(db, "SELECT count(*), count(DISTINCT prompt_key) FROM datagen_prompts") == [(25, 25)]
    assert query(db, "SELECT state FROM datagen_batch_jobs") == [("JOB_STATE_SUCCEEDED",)]
