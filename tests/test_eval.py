"""Evaluation: the metrics on known cases, the first-sentence baseline, evaluate() and `revprompt eval`."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from revprompt.core.errors import UserError
from revprompt.training import metrics
from revprompt.training.data import Pair
from revprompt.training.evaluate import evaluate, first_sentence, read_details

PAIRS = [
    Pair("Name the capital of France.", "The capital of France is Paris. It is on the Seine."),
    Pair("Give two tips for sleep", "# Sleep tips\n\n1. Keep a regular schedule. 2. Avoid screens."),
    Pair("What is 2+2?", "2+2 equals 4."),
]


def write_pairs(path, pairs=PAIRS):
    path.write_text("".join(json.dumps({"prompt": p.prompt, "response": p.response}) + "\n" for p in pairs))
    return path


@pytest.fixture(scope="module")
def small_engine(tiny_model, gemma_tokenizer):
    from revprompt.core.engine import Engine
    from revprompt.core.types import DEFAULT_SWEEP

    return Engine(tiny_model, gemma_tokenizer, configs=DEFAULT_SWEEP[:4], max_new_tokens=6, model_name="tiny-random")


# -- metrics ------------------------------------------------------------------------------------------------
def test_token_f1():
    assert metrics.token_f1("The cat sat.", "the CAT sat") == 1.0
    assert metrics.token_f1("red green", "blue yellow") == 0.0
    # pred {the, cat, sat, on, mat}, ref {a, cat, sat}: overlap 2, P = 2/5, R = 2/3, F1 = 0.5
    assert metrics.token_f1("the cat sat on the mat", "a cat sat") == pytest.approx(0.5)
    assert metrics.token_f1("", "something") == 0.0
    assert metrics.token_f1("", "") == 1.0


def test_exact_match_normalises_case_space_and_trailing_punctuation():
    assert metrics.exact_match("What is  the capital of France? ", "what is the capital of france") == 1.0
    assert metrics.exact_match("Write a poem.", "write a poem!") == 1.0
    assert metrics.exact_match("Write a poem", "Write a song") == 0.0
    assert metrics.exact_match("a, b", "a b") == 0.0  # inner punctuation counts


def test_bleu():
    assert metrics.bleu("write a short poem about the sea", "write a short poem about the sea") == pytest.approx(100.0)
    assert metrics.bleu("completely different words here", "write a short poem about the sea") < 5
    assert metrics.bleu("", "write a poem") == 0.0


def test_cosine_with_minilm():
    same = metrics.cosine("How do I bake sourdough bread?", "How do I bake sourdough bread?")
    assert same == pytest.approx(1.0, abs=1e-4)
    unrelated = metrics.cosine("How do I bake sourdough bread?", "Explain the tax rules for offshore companies.")
    assert unrelated < 0.5
    assert metrics.cosine("", "anything") == 0.0
    close, far = metrics.cosine_similarities(
        ["Write a poem about the ocean", "List prime numbers below 20"], ["Compose a poem about the sea"] * 2
    )
    assert close > far


# -- the baseline -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("The capital is Paris. It is big.", "The capital is Paris."),
        ("# Title\n\n## Sub\n\nFirst real line! Then more.", "First real line!"),
        ("\n\n**Overview**\n\nSure, here it is: a list\n- one\n- two", "Sure, here it is: a list"),
        ("1. Keep a schedule. 2. Sleep.", "Keep a schedule."),
        ("We use e.g. flour and Dr. Smith's yeast. Next.", "We use e.g. flour and Dr. Smith's yeast."),
        ("Pi is about 3.14 today. Yes.", "Pi is about 3.14 today."),
        ("Is it?Yes it is. More", "Is it?Yes it is."),
        ("Introduction:\n\nThe internet is a network. It grew.", "The internet is a network."),
        ("Here are some tips: sleep early. Eat well.", "Here are some tips: sleep early."),
        ("# Only a heading", "Only a heading"),
        ("", ""),
        (" ".join(f"w{i}" for i in range(100)), " ".join(f"w{i}" for i in range(40))),
    ],
)
def test_first_sentence(text, expected):
    assert first_sentence(text) == expected


# -- evaluate() ---------------------------------------------------------------------------------------------
def test_evaluate_tiny_engine(small_engine, tmp_path):
    details = tmp_path / "rows.jsonl"
    seen = []
    report = evaluate(small_engine, PAIRS, progress=False, on_result=seen.append, details=details)
    assert report.pairs == 3 and len(seen) == 3 and report.resumed == 0
    summary = report.summary()
    assert summary["model"] == "tiny-random" and summary["pairs"] == 3 and summary["seconds_per_doc"] > 0
    best = f"best_of_{small_engine.top_n}"
    assert set(summary["metrics"]) == {"cosine", "bleu", "token_f1", "exact_match"}
    for metric, values in summary["metrics"].items():
        assert values["top1"] <= values[best] + 1e-9, metric
    for row in report.rows:
        assert 1 <= len(row["candidates"]) <= small_engine.top_n
        assert row["top1"] == row["candidates"][0]["prompt"]
        for metric, s in row["scores"].items():
            assert s["top1"] <= s["best"]
            assert s["best"] == pytest.approx(max(c[metric] for c in row["candidates"]), abs=1e-3)
    assert [r["baseline"] for r in report.rows] == [
        "The capital of France is Paris.",
        "Keep a regular schedule.",
        "2+2 equals 4.",
    ]
    assert len(read_details(details)) == 3

    # Resume: nothing left to do, so the engine factory is never called, and the summary is the same.
    def no_engine():
        raise AssertionError("the engine should not be loaded")

    again = evaluate(no_engine, PAIRS, progress=False, details=details)
    assert again.resumed == 3 and again.summary()["metrics"] == summary["metrics"]
    assert "by_source" not in summary  # one source: nothing to break down
    with pytest.raises(UserError, match="top="):
        evaluate(no_engine, PAIRS, progress=False, details=details, top=3)


class FakeEngine:
    """Proposes fixed candidates: a wrong one first, the true prompt second."""

    model_name, top_n, max_new_tokens, max_input_tokens = "fake", 10, 8, 64

    def __init__(self, prompts):
        self.prompts = prompts

    def sweep(self, text, kind="response"):
        truth = self.prompts[text]
        cands = [
            SimpleNamespace(prompt=p, rank=i, perplexity=1.0 + i)
            for i, p in enumerate(["zzz unrelated words", truth], start=1)
        ]
        return SimpleNamespace(candidates=cands, n_input_tokens=5, truncated=False)


def test_evaluate_best_of_beats_top1_and_limit(tmp_path):
    engine = FakeEngine({p.response: p.prompt for p in PAIRS})
    report = evaluate(engine, PAIRS, limit=2, progress=False)
    m = report.summary()["metrics"]
    assert report.pairs == 2
    assert m["exact_match"] == {"top1": 0.0, "best_of_10": 1.0, "baseline": 0.0}
    assert m["token_f1"]["best_of_10"] == 1.0 and m["bleu"]["best_of_10"] == pytest.approx(100.0)
    assert m["cosine"]["best_of_10"] == pytest.approx(1.0, abs=1e-3) and m["cosine"]["top1"] < 0.5


# -- the command --------------------------------------------------------------------------------------------
def test_eval_command_json_table_and_resume(small_engine, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from revprompt.core.cli import cli
    from revprompt.core.engine import Engine

    loads = []

    def fake_load(model=None, **kwargs):
        loads.append((model, kwargs))
        return small_engine

    monkeypatch.setattr(Engine, "load", fake_load)
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    details = tmp_path / "out" / "rows.jsonl"
    result = CliRunner().invoke(cli, ["eval", str(pairs), "--json", "--limit", "2", "--details", str(details)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["model"] == "tiny-random" and summary["pairs"] == 2
    assert set(summary["metrics"]) == {"cosine", "bleu", "token_f1", "exact_match"}
    for values in summary["metrics"].values():
        assert set(values) >= {"top1", "best_of_10", "baseline"} and values["top1"] <= values["best_of_10"]
    assert loads[0][1]["top_n"] == 10 and len(read_details(details)) == 2

    # Re-run on all three pairs: two come from the file, one is new; the table names the columns.
    result = CliRunner().invoke(cli, ["eval", str(pairs), "--details", str(details)])
    assert result.exit_code == 0, result.output
    assert "best-of-10" in result.stdout and "token F1" in result.stdout and "3 pairs" in result.stdout
    assert len(read_details(details)) == 3


def test_eval_command_bad_files_are_one_line_errors(tmp_path, capsys):
    from revprompt.core.cli import main

    for path in (tmp_path / "missing.jsonl", tmp_path / "empty.jsonl"):
        if path.name == "empty.jsonl":
            path.write_text("\n")
        with pytest.raises(SystemExit) as exit_info:
            main(["eval", str(path)])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("revprompt: error:") and "\n" not in err


def test_a_mixed_set_is_also_judged_source_by_source(small_engine, tmp_path):
    """dev600 mixes three answering models; the summary splits them, and the parts add up to the whole."""
    mixed = [Pair(p.prompt, p.response, source) for p, source in zip(PAIRS, ("claude", "gpt4", "claude"))]
    details = tmp_path / "rows.jsonl"
    evaluate(small_engine, mixed[:1], progress=False, details=details)  # one row stored by an earlier run
    report = evaluate(small_engine, mixed, progress=False, details=details)
    assert report.resumed == 1
    parts = report.summary()["by_source"]
    assert {s: part["pairs"] for s, part in parts.items()} == {"claude": 2, "gpt4": 1}
    rows = {s: [r for r, src in zip(report.rows, ("claude", "gpt4", "claude")) if src == s] for s in parts}
    for source, part in parts.items():
        for metric, values in part["metrics"].items():
            mean = sum(r["scores"][metric]["top1"] for r in rows[source]) / len(rows[source])
            assert values["top1"] == pytest.approx(mean, abs=1e-4), (source, metric)
    whole = report.summary()["metrics"]["token_f1"]["top1"]
    weighted = sum(part["pairs"] * part["metrics"]["token_f1"]["top1"] for part in parts.values()) / 3
    assert whole == pytest.approx(weighted, abs=1e-3)
