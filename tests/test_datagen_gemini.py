"""Stage 1 and stage 2 through the real google-genai client against a loopback generateContent server."""

from __future__ import annotations

import json
import time

import pytest
from fixtures.datagen.fake_gemini import MALFORMED_MARKER
from fixtures.datagen.helpers import API_KEY, fake, gemini_args, gemini_env, query, run_cli  # noqa: F401

pytestmark = pytest.mark.timeout(120)

CATS = ("-c", "simple_prompt", "-c", "typical_prompt")


def prompts(capsys, fake, db, *extra):
    return run_cli(capsys, "datagen", "prompts", *gemini_args(fake, db, *extra))


def responses(capsys, fake, db, *extra):
    return run_cli(capsys, "datagen", "responses", *gemini_args(fake, db, "--yes", *extra))


# -- stage 1 --------------------------------------------------------------------------------------------


def test_prompts_request_uses_schema_no_thinking_and_key_header(capsys, gemini_env, fake, tmp_path):
    db = tmp_path / "d.duckdb"
    code, out, err = prompts(capsys, fake, db, "-n", "250", "-c", "detailed_prompt", "--model", "gemini-2.5-flash")
    assert code == 0, err
    sent = fake.prompt_requests()
    assert len(sent) == 3  # 100 + 100 + 50
    for request in sent:
        assert request["path"].endswith("/models/gemini-2.5-flash:generateContent")
        assert request["headers"]["x-goog-api-key"] == API_KEY
        config = request["body"]["generationConfig"]
        assert config["responseMimeType"] == "application/json"
        assert config["responseSchema"]["properties"]["prompts"]["type"] == "ARRAY"
        thinking = config["thinkingConfig"]
        assert thinking.get("thinkingBudget", thinking.get("thinking_budget")) == 0
    texts = [r["body"]["contents"][0]["parts"][0]["text"] for r in sent]
    asked = sorted(int(t.split("Write exactly ")[1].split()[0]) for t in texts)
    assert asked == [50, 100, 100]
    assert query(db, "SELECT category, count(*) FROM datagen_prompts GROUP BY ALL") == [("detailed_prompt", 250)]
    assert sorted(r[0] for r in query(db, "SELECT batch_no FROM datagen_batches")) == [0, 1, 2]
    assert "detailed_prompt 250/250" in out


def test_prompts_retries_429_and_5xx_then_stores_everything(capsys, gemini_env, fake, tmp_path):
    db = tmp_path / "d.duckdb"
    fake.faults.extend([429, 500, 503, 429])
    code, out, err = prompts(capsys, fake, db, "-n", "30", *CATS, "--batch-size", "10", "--concurrency", "1")
    assert code == 0, err
    assert len(fake.requests) == 6 + 4  # six batches, four of them retried once each
    assert query(db, "SELECT count(*), count(DISTINCT prompt_key) FROM datagen_prompts") == [(60, 60)]
    assert "2 rate-limited, 2 server errors" in out
    # Transient trouble that healed is not an error worth keeping.
    assert query(db, "SELECT count(*) FROM datagen_errors") == [(0,)]


def test_429_retry_delay_from_server_is_honoured(capsys, gemini_env, fake, tmp_path):
    fake.faults.append(("429", 0.6))
    start = time.monotonic()
    code, _, err = prompts(capsys, fake, tmp_path / "d.duckdb", "-n", "5", "-c", "simple_prompt")
    assert code == 0, err
    assert time.monotonic() - start >= 0.6  # --backoff 0.01 alone would have retried after ~10 ms
    assert len(fake.requests) == 2


@pytest.mark.parametrize(
    "fault,kind", [("malformed", "malformed_json"), ("wrong_shape", "wrong_shape"), ("empty", "empty")]
)
def test_unusable_json_is_rejected_logged_and_never_stored(capsys, caplog, gemini_env, fake, tmp_path, fault, kind):
    db = tmp_path / "d.duckdb"
    fake.faults.append(fault)
    code, _, err = prompts(capsys, fake, db, "-n", "10", "-c", "simple_prompt")
    assert code == 0, err
    assert len(fake.requests) == 2  # rejected once, asked again
    assert query(db, "SELECT count(*) FROM datagen_prompts WHERE prompt LIKE ?", [f"%{MALFORMED_MARKER}%"]) == [(0,)]
    assert query(db, "SELECT count(*) FROM datagen_prompts") == [(10,)]
    logged = query(db, "SELECT stage, kind, category, batch_no, detail FROM datagen_errors")
    assert [row[:4] for row in logged] == [("prompts", kind, "simple_prompt", 0)]
    assert MALFORMED_MARKER not in logged[0][4]  # the log says what was wrong, it does not keep the text
    assert "rejected simple_prompt batch 0" in caplog.text


def test_both_keys_set_the_request_carries_google_api_key_and_says_so(capsys, gemini_env, monkeypatch, fake, tmp_path):
    monkeypatch.setenv("GOOGLE_API_KEY", "google-key-77")
    code, out, err = prompts(capsys, fake, tmp_path / "d.duckdb", "-n", "2", "-c", "simple_prompt")
    assert code == 0, err
    assert fake.requests[0]["headers"]["x-goog-api-key"] == "google-key-77"
    assert "using GOOGLE_API_KEY" in err
    assert "google-key-77" not in out + err and API_KEY not in out + err


def test_rejected_answers_count_in_the_tokens_and_the_dollar_total(capsys, gemini_env, fake, tmp_path):
    db = tmp_path / "d.duckdb"
    fake.faults.append("malformed")  # billed like any answer, then thrown away
    code, out, err = prompts(capsys, fake, db, "-n", "10", "-c", "simple_prompt")
    assert code == 0, err
    assert len(fake.requests) == 2
    # The fake bills 11 input tokens per call and len(text)//4 output tokens.
    malformed_out = len('{"prompts": ["' + MALFORMED_MARKER + ' one", "two') // 4
    ((stored_in, stored_out),) = query(db, "SELECT input_tokens, output_tokens FROM datagen_batches")
    assert stored_in == 22  # both attempts: the batch row says what the batch cost
    good_out = stored_out - malformed_out
    assert good_out > 0
    assert f"tokens used: 22 input / {stored_out} output ({11 + malformed_out} of them on rejected" in out
    cost = (22 * 0.30 + stored_out * 2.50) / 1e6
    assert f"cost ${cost:,.4f}" in out

    # Stage 2 too, where a rejected (empty) answer and a blocked one are billed as well.
    fake.faults.extend(["empty", "blocked"])
    code, out, err = responses(capsys, fake, db, "--concurrency", "1", "--limit", "2")
    assert code == 0, err
    # empty: 11 in + 1 out, blocked: 4 in (its usageMetadata), then the one good answer: 11 in.
    assert "tokens used: 26 input / " in out and "(16 of them on rejected or blocked answers)" in out


def test_duplicates_are_dropped_and_topups_fill_the_gap(capsys, caplog, gemini_env, fake, tmp_path):
    db = tmp_path / "d.duckdb"
    fake.prompt_mode = "repeat"  # every batch returns the same ten prompts
    code, out, err = prompts(capsys, fake, db, "-n", "20", "-c", "mid_tail_query", "--batch-size", "10")
    assert code == 0, err
    # Batches 0 and 1 both return the same 10; one top-up adds nothing new, so the run stops short.
    assert query(db, "SELECT count(*), count(DISTINCT prompt_key) FROM datagen_prompts") == [(10, 10)]
    assert sorted(r[0] for r in query(db, "SELECT batch_no FROM datagen_batches")) == [0, 1, 2]
    assert "20 duplicates dropped" in out
    assert "mid_tail_query 10/20" in out
    assert "repeats itself" in caplog.text

    # With a model that writes new prompts again, a re-run tops the category up to exactly the target.
    fake.prompt_mode = "unique"
    code, out, err = prompts(capsys, fake, db, "-n", "20", "-c", "mid_tail_query", "--batch-size", "10")
    assert code == 0, err
    assert query(db, "SELECT count(*) FROM datagen_prompts") == [(20,)]
    assert "mid_tail_query 20/20" in out


def test_dedup_ignores_case_spacing_and_end_punctuation(gemini_env, tmp_path):
    from revprompt.core.store import Store
    from revprompt.datagen.tables import DatagenTables, Usage

    with Store(tmp_path / "d.duckdb") as store:
        tables = DatagenTables(store)
        added = tables.save_batch(
            "simple_prompt",
            0,
            "t",
            4,
            ["Best pizza in Rome?", "best  pizza in rome", "“Best pizza in Rome”", "Other"],
            "m",
            Usage(),
            1,
        )
        assert added == 2
        assert tables.save_batch("simple_prompt", 1, "t", 1, ["BEST PIZZA IN ROME!"], "m", Usage(), 1) == 0
        assert tables.prompt_count() == 2


def test_calls_that_keep_failing_are_left_for_a_rerun(capsys, gemini_env, fake, tmp_path):
    db = tmp_path / "d.duckdb"
    fake.faults.extend([500] * 3)
    code, _, err = prompts(capsys, fake, db, "-n", "10", "-c", "simple_prompt", "--max-attempts", "3")
    assert code == 1
    assert "1 calls failed after retries" in err and "Traceback" not in err
    assert query(db, "SELECT count(*) FROM datagen_prompts") == [(0,)]
    assert query(db, "SELECT kind FROM datagen_errors") == [("http_500",)]
    code, out, err = prompts(capsys, fake, db, "-n", "10", "-c", "simple_prompt")
    assert code == 0, err
    assert query(db, "SELECT count(*) FROM datagen_prompts") == [(10,)]


def test_bad_key_stops_the_run_with_one_line_and_never_shows_the_key(capsys, gemini_env, fake, tmp_path):
    db = tmp_path / "d.duckdb"
    # A server that echoes the key back must not get it onto the screen or into the database.
    fake.faults.extend([("status", 400, f"API key not valid: {API_KEY}")] * 20)
    code, out, err = prompts(capsys, fake, db, "-n", "300", *CATS, "--concurrency", "2")
    assert code == 1
    assert err.strip().splitlines()[-1].startswith("revprompt: error: Gemini: HTTP 400")
    assert "Traceback" not in err
    assert API_KEY not in out + err
    assert len(fake.requests) <= 2  # fatal: no further calls after the in-flight ones
    stored = query(db, "SELECT detail FROM datagen_errors")
    assert all(API_KEY not in (d or "") for (d,) in stored)
    assert API_KEY.encode() not in (tmp_path / "d.duckdb").read_bytes()


def test_missing_key_is_a_user_error(capsys, gemini_env, monkeypatch, fake, tmp_path):
    monkeypatch.delenv("GEMINI_API_KEY")
    code, _, err = prompts(capsys, fake, tmp_path / "d.duckdb", "-n", "5")
    assert code == 2
    assert "no Gemini API key" in err and "GEMINI_API_KEY" in err
    assert fake.requests == []


def test_estimate_only_makes_no_call_and_big_runs_need_yes(capsys, gemini_env, fake, tmp_path):
    db = tmp_path / "d.duckdb"
    code, out, err = prompts(capsys, fake, db, "-n", "250", "--estimate")
    assert code == 0
    assert "prompts: 15 calls to gemini-2.5-flash" in err and "$" in err
    # 100,000 prompts x 5 categories is thousands of calls: refused without --yes when nobody can be asked.
    code, out, err = prompts(capsys, fake, db, "-n", "100000")
    assert code == 1 and "pass --yes" in err
    assert fake.requests == []


def test_vertex_express_mode_uses_the_vertex_path(capsys, gemini_env, fake, tmp_path):
    code, _, err = prompts(capsys, fake, tmp_path / "d.duckdb", "-n", "5", "-c", "simple_prompt", "--vertexai")
    assert code == 0, err
    assert fake.requests[0]["path"] == "/v1beta1/publishers/google/models/gemini-2.5-flash:generateContent"


def test_gemini_api_flag_beats_the_vertex_environment_switch(capsys, gemini_env, monkeypatch, fake, tmp_path):
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    code, _, err = prompts(capsys, fake, tmp_path / "d.duckdb", "-n", "5", "-c", "simple_prompt", "--gemini-api")
    assert code == 0, err
    assert "/publishers/" not in fake.requests[0]["path"]


def test_raising_the_target_later_asks_only_for_the_difference(capsys, gemini_env, fake, tmp_path):
    db = tmp_path / "d.duckdb"
    assert prompts(capsys, fake, db, "-n", "15", "-c", "simple_prompt", "--batch-size", "10")[0] == 0
    assert len(fake.requests) == 2  # 10 + 5
    code, out, err = prompts(capsys, fake, db, "-n", "30", "-c", "simple_prompt", "--batch-size", "10")
    assert code == 0, err
    new_sizes = sorted(
        int(r["body"]["contents"][0]["parts"][0]["text"].split("Write exactly ")[1].split()[0])
        for r in fake.requests[2:]
    )
    assert new_sizes == [5, 10]  # batch 2 of the new plan, then a top-up for what the short batch 1 left
    assert query(db, "SELECT count(*) FROM datagen_prompts") == [(30,)]
    assert "simple_prompt 30/30" in out


def test_progress_bar_goes_to_stderr(capsys, gemini_env, fake, tmp_path):
    from revprompt.core.cli import main

    capsys.readouterr()
    main(
        [
            "datagen",
            "prompts",
            "--db",
            str(tmp_path / "d.duckdb"),
            "--base-url",
            fake.base_url,
            "-n",
            "5",
            "-c",
            "simple_prompt",
        ]
    )
    out, err = capsys.readouterr()
    assert "prompts" in err and "1/1" in err
    assert "1/1" not in out


# -- stage 2 --------------------------------------------------------------------------------------------


def test_responses_answer_every_prompt_once(capsys, gemini_env, fake, tmp_path):
    db = tmp_path / "d.duckdb"
    assert prompts(capsys, fake, db, "-n", "12", *CATS)[0] == 0
    fake.faults.extend([429, 500])
    code, out, err = responses(capsys, fake, db, "--concurrency", "3")
    assert code == 0, err
    pairs = query(
        db,
        "SELECT p.prompt, r.response, r.source, r.category, r.finish_reason, r.output_tokens "
        "FROM datagen_pairs r JOIN datagen_prompts p USING (prompt_id)",
    )
    assert len(pairs) == 24
    assert all(
        resp == f"Answer to: {prompt}" and src == "gemini" and fin == "STOP" and tok > 0
        for prompt, resp, src, _, fin, tok in pairs
    )
    answers = fake.answer_requests()
    assert len(answers) == 24 + 2
    config = answers[0]["body"]["generationConfig"]
    assert "responseSchema" not in config and config["maxOutputTokens"] == 2048
    # A second run has nothing left to ask.
    before = len(fake.requests)
    code, out, _ = responses(capsys, fake, db)
    assert code == 0 and "nothing to do" in out and len(fake.requests) == before


def test_blocked_prompt_fails_for_good_and_is_skipped_until_retry_failed(capsys, gemini_env, fake, tmp_path):
    db = tmp_path / "d.duckdb"
    assert prompts(capsys, fake, db, "-n", "3", "-c", "simple_prompt")[0] == 0
    fake.faults.append("blocked")
    code, out, err = responses(capsys, fake, db, "--concurrency", "1")
    assert code == 0, err
    assert "2 answered" in out and "1 failed for good" in out
    assert len(fake.answer_requests()) == 3  # not retried: it would be blocked again
    assert query(db, "SELECT kind, permanent FROM datagen_errors") == [("blocked", True)]
    code, out, _ = responses(capsys, fake, db)
    assert "nothing to do" in out
    code, out, _ = responses(capsys, fake, db, "--retry-failed")
    assert code == 0 and "1 answered" in out
    assert query(db, "SELECT count(*) FROM datagen_pairs") == [(3,)]


def test_empty_answer_is_rejected_and_asked_again(capsys, gemini_env, fake, tmp_path):
    db = tmp_path / "d.duckdb"
    assert prompts(capsys, fake, db, "-n", "2", "-c", "simple_prompt")[0] == 0
    fake.faults.extend(["empty", "not_json_body"])
    code, out, err = responses(capsys, fake, db, "--concurrency", "1")
    assert code == 0, err
    assert query(db, "SELECT count(*) FROM datagen_pairs WHERE response <> ''") == [(2,)]
    assert len(fake.answer_requests()) == 4
    assert query(db, "SELECT stage, kind FROM datagen_errors") == [("responses", "empty")]


def test_responses_options_reach_the_request(capsys, gemini_env, fake, tmp_path):
    db = tmp_path / "d.duckdb"
    assert prompts(capsys, fake, db, "-n", "4", *CATS)[0] == 0
    code, out, err = responses(
        capsys,
        fake,
        db,
        "-c",
        "typical_prompt",
        "--limit",
        "3",
        "--thinking-budget",
        "256",
        "--max-output-tokens",
        "100",
        "--temperature",
        "0.5",
        "--model",
        "gemini-2.5-pro",
    )
    assert code == 0, err
    answers = fake.answer_requests()
    assert len(answers) == 3
    assert all(r["model"] == "gemini-2.5-pro" for r in answers)
    config = answers[0]["body"]["generationConfig"]
    assert config["maxOutputTokens"] == 100 and config["temperature"] == 0.5
    thinking = config["thinkingConfig"]
    assert thinking.get("thinkingBudget", thinking.get("thinking_budget")) == 256
    assert query(db, "SELECT DISTINCT category, model FROM datagen_pairs") == [("typical_prompt", "gemini-2.5-pro")]
    assert "1 prompts still unanswered" in out  # four typical prompts, limit three (simple ones not counted)


def test_status_reports_counts(capsys, gemini_env, fake, tmp_path):
    db = tmp_path / "d.duckdb"
    assert prompts(capsys, fake, db, "-n", "3", "-c", "simple_prompt")[0] == 0
    assert responses(capsys, fake, db, "--limit", "2")[0] == 0
    code, out, _ = run_cli(capsys, "datagen", "status", "--db", db)
    assert code == 0
    assert "simple_prompt: 3" in out and "gemini: 2" in out and "prompts without an answer: 1" in out


def test_export_after_both_stages_writes_training_jsonl(capsys, gemini_env, fake, tmp_path):
    db, out_dir = tmp_path / "d.duckdb", tmp_path / "data"
    assert prompts(capsys, fake, db, "-n", "40", "--batch-size", "20")[0] == 0
    assert responses(capsys, fake, db, "--concurrency", "8")[0] == 0
    code, out, err = run_cli(capsys, "datagen", "export", out_dir, "--db", db, "--dev-fraction", "0.1")
    assert code == 0, err
    rows = [json.loads(line) for f in ("train.jsonl", "dev.jsonl") for line in (out_dir / f).read_text().splitlines()]
    assert len(rows) == 200
    assert all(r["response"] == f"Answer to: {r['prompt']}" for r in rows)
    assert {r["category"] for r in rows} == {
        "mid_tail_query",
        "long_tail_query",
        "simple_prompt",
        "typical_prompt",
        "detailed_prompt",
    }
    n_dev = len((out_dir / "dev.jsonl").read_text().splitlines())
    assert 5 <= n_dev <= 40
    # The contract with training: its reader takes the exported file as it is.
    from revprompt.training.data import read_pairs

    assert len(read_pairs([out_dir / "train.jsonl"])) == 200 - n_dev
