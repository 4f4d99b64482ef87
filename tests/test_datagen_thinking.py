"""The thinking config per model family, checked against a loopback server that refuses what the API refuses."""

from __future__ import annotations

import pytest
from fixtures.datagen.fake_gemini import thinking_of
from fixtures.datagen.helpers import fake, gemini_args, gemini_env, query, run_cli  # noqa: F401

from revprompt.core.errors import UserError

pytestmark = pytest.mark.timeout(120)


def _thinking(request) -> dict | None:
    return thinking_of(request)


def _run(capsys, fake, db, stage, *extra):
    yes = ("--yes",) if stage == "responses" else ()
    return run_cli(capsys, "datagen", stage, *gemini_args(fake, db, *yes, *extra))


def test_gemini_25_pro_works_with_its_minimum_budget(capsys, gemini_env, fake, tmp_path):
    # Budget 0 on 2.5 Pro is a 400 on every call ("This model only works in thinking mode").
    db = tmp_path / "d.duckdb"
    code, out, err = _run(capsys, fake, db, "prompts", "-n", "3", "-c", "simple_prompt", "--model", "gemini-2.5-pro")
    assert code == 0, err
    code, out, err = _run(capsys, fake, db, "responses", "--model", "gemini-2.5-pro")
    assert code == 0, err
    assert "3 answered" in out
    assert {_thinking(r)["thinkingBudget"] for r in fake.requests} == {128}
    assert "cannot turn thinking off" in err
    assert query(db, "SELECT count(*) FROM datagen_errors") == [(0,)]


def test_flash_keeps_thinking_off_and_flash_lite_budget_moves_into_range(capsys, gemini_env, fake, tmp_path):
    db = tmp_path / "d.duckdb"
    assert _run(capsys, fake, db, "prompts", "-n", "2", "-c", "simple_prompt")[0] == 0
    assert _thinking(fake.requests[0]) == {"thinkingBudget": 0}
    code, out, err = _run(capsys, fake, db, "responses", "--model", "gemini-2.5-flash-lite", "--thinking-budget", "100")
    assert code == 0, err
    assert {_thinking(r)["thinkingBudget"] for r in fake.answer_requests()} == {512}
    assert "using 512" in err


@pytest.mark.parametrize("model,level", [("gemini-3-flash-preview", "MINIMAL"), ("gemini-3-pro-preview", "LOW")])
def test_gemini_3_gets_a_thinking_level_not_a_budget(capsys, gemini_env, fake, tmp_path, model, level):
    db = tmp_path / "d.duckdb"
    assert _run(capsys, fake, db, "prompts", "-n", "2", "-c", "simple_prompt", "--model", model)[0] == 0
    code, out, err = _run(capsys, fake, db, "responses", "--model", model)
    assert code == 0, err
    assert all(_thinking(r) == {"thinkingLevel": level} for r in fake.requests)
    code, out, err = _run(capsys, fake, db, "responses", "--model", model, "--thinking-level", "high", "--retry-failed")
    assert code == 0


def test_gemini_3_level_option_reaches_the_request_and_a_budget_is_refused(capsys, gemini_env, fake, tmp_path):
    db = tmp_path / "d.duckdb"
    assert _run(capsys, fake, db, "prompts", "-n", "2", "-c", "simple_prompt")[0] == 0
    code, out, err = _run(
        capsys, fake, db, "responses", "--model", "gemini-3-flash-preview", "--thinking-level", "high", "--limit", "1"
    )
    assert code == 0, err
    assert _thinking(fake.answer_requests()[-1]) == {"thinkingLevel": "HIGH"}
    before = len(fake.requests)
    code, out, err = _run(
        capsys, fake, db, "responses", "--model", "gemini-3-flash-preview", "--thinking-budget", "500"
    )
    assert code == 2 and "--thinking-level" in err and "Traceback" not in err
    code, out, err = _run(capsys, fake, db, "responses", "--thinking-level", "low")
    assert code == 2 and "Gemini 3" in err
    assert len(fake.requests) == before


def test_models_that_do_not_think_get_no_thinking_config(capsys, gemini_env, fake, tmp_path):
    db = tmp_path / "d.duckdb"
    assert _run(capsys, fake, db, "prompts", "-n", "2", "-c", "simple_prompt", "--model", "gemini-2.0-flash")[0] == 0
    assert _thinking(fake.requests[0]) is None


def test_plan_thinking_table():
    from revprompt.datagen.thinking import plan_thinking

    assert plan_thinking("gemini-2.5-flash").budget == 0
    assert plan_thinking("models/gemini-2.5-pro", 0).budget == 128
    assert plan_thinking("gemini-2.5-pro", 50000).budget == 32768
    assert plan_thinking("gemini-2.5-pro", -1).budget == -1
    assert plan_thinking("gemini-2.5-flash-lite", 0).budget == 0
    assert plan_thinking("gemini-3-pro-preview", None, "minimal").level == "LOW"
    assert plan_thinking("gemini-3-flash-preview", -1).config() is None
    assert plan_thinking("my-tuned-model", 300).budget == 300
    with pytest.raises(UserError):
        plan_thinking("gemini-3-pro-preview", 100, "low")
