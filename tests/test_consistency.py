"""Pair consistency: perplexity of the true prompt, its rank among the sweep's candidates, flagging the weakest."""

from __future__ import annotations

import json
import math

import pytest

from revprompt.core.cli import main
from revprompt.core.errors import UserError
from revprompt.core.types import DEFAULT_SWEEP
from revprompt.plugins.consistency import flag_weakest, read_pairs, score_pairs, weakest_first
from revprompt.plugins.testing import make_result

SWEEP = [("guess one", 2.0), ("guess two", 3.0), ("guess three", 4.0)]
# response -> (true prompt, its perplexity given the response)
PAIRS = {
    "Paris is the capital of France.": ("What is the capital of France?", 1.5),  # beats every guess: rank 1
    "Boil the pasta for ten minutes.": ("How long do I cook pasta?", 3.5),  # two guesses are likelier: rank 3
    "Lorem ipsum dolor sit amet.": ("Explain quantum computing", 10.0),  # mismatched: rank 4, worst perplexity
    "The cat sat on the mat.": ("Write a haiku about dogs", 9.0),  # mismatched: rank 4
}


class FakeEngine:
    def __init__(self):
        self.scored = []

    def score(self, text, prompts):
        true_prompt, ppl = PAIRS[text]
        assert prompts == [true_prompt]
        self.scored.append(text)
        return make_result([(true_prompt, ppl)]).candidates

    def sweep(self, text, kind="response"):
        return make_result(SWEEP)


def pairs():
    return [(prompt, response) for response, (prompt, _) in PAIRS.items()]


def test_rank_and_perplexity_and_flags():
    progress = []
    scores = score_pairs(FakeEngine(), pairs(), flag_fraction=0.25, progress=progress.append)
    assert len(progress) == 4
    assert [s.rank for s in scores] == [1, 3, 4, 4]
    assert [s.perplexity for s in scores] == [1.5, 3.5, 10.0, 9.0]
    assert all(s.n_candidates == 3 and s.best_prompt == "guess one" and s.best_perplexity == 2.0 for s in scores)
    assert [s.flagged for s in scores] == [False, False, True, False]
    assert [s.index for s in weakest_first(scores)] == [2, 3, 1, 0]
    flagged = flag_weakest(scores, 0.5)
    assert [s.index for s in flagged] == [2, 3] and [s.flagged for s in scores] == [False, False, True, True]
    assert flag_weakest(scores, 0.0) == [] and not any(s.flagged for s in scores)
    assert len(flag_weakest(scores, 0.01)) == 1  # any positive fraction flags at least one pair
    with pytest.raises(UserError):
        flag_weakest(scores, 1.5)


def test_tiny_model_rank_is_one_plus_likelier_candidates(tiny_model, gemma_tokenizer):
    from revprompt.core.engine import Engine

    engine = Engine(
        tiny_model,
        gemma_tokenizer,
        configs=DEFAULT_SWEEP[:2],
        max_new_tokens=6,
        model_name="tiny-random",
        method="reference",
    )
    data = [
        ("What is the capital of France?", "Paris is the capital of France."),
        ("Give me a pasta tip", "Salt the water well."),
    ]
    seen = {}

    class Spy:  # records what the real engine answered, so the test checks against the same numbers
        def score(self, text, prompts):
            seen[text, "score"] = engine.score(text, prompts)
            return seen[text, "score"]

        def sweep(self, text, kind="response"):
            seen[text, "sweep"] = engine.sweep(text)
            return seen[text, "sweep"]

    scores = score_pairs(Spy(), data, flag_fraction=0.5)
    for s, (_prompt, response) in zip(scores, data):
        true, cands = seen[response, "score"][0], seen[response, "sweep"].candidates
        assert s.perplexity == true.perplexity and math.isfinite(s.perplexity) and s.perplexity > 1
        assert s.rank == 1 + sum(c.perplexity < true.perplexity for c in cands)
        assert s.n_candidates == len(cands) > 0 and s.best_prompt == cands[0].prompt
    assert sum(s.flagged for s in scores) == 1
    assert weakest_first(scores)[0].flagged


def write_pairs(path, records):
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n", encoding="utf-8")
    return str(path)


def test_read_pairs_accepts_common_keys_and_reports_bad_lines(tmp_path):
    path = write_pairs(
        tmp_path / "p.jsonl",
        [
            {"id": "a", "prompt": "p1", "response": "r1"},
            {"instruction": "p2", "output": "r2"},
            {"question": "p3", "answer": "r3"},
        ],
    )
    got = read_pairs(path)
    assert [(p.prompt, p.response, p.id, p.line) for p in got] == [
        ("p1", "r1", "a", 1),
        ("p2", "r2", None, 2),
        ("p3", "r3", None, 3),
    ]
    assert len(read_pairs(path, limit=2)) == 2
    (tmp_path / "a.json").write_text(json.dumps([{"prompt": "p", "response": "r"}]))
    assert read_pairs(tmp_path / "a.json")[0].prompt == "p"
    (tmp_path / "bad.jsonl").write_text('{"prompt": "p", "response": "r"}\n{"prompt": "only"}\n')
    with pytest.raises(UserError, match=r"bad.jsonl:2: needs a prompt"):
        read_pairs(tmp_path / "bad.jsonl")
    (tmp_path / "broken.jsonl").write_text('{"prompt": \n')
    with pytest.raises(UserError, match=r"broken.jsonl:1: not valid JSON"):
        read_pairs(tmp_path / "broken.jsonl")
    with pytest.raises(UserError, match="no such file"):
        read_pairs(tmp_path / "missing.jsonl")


def run_cli(*args):
    try:
        main(list(args))
    except SystemExit as exc:
        return exc.code
    return 0


@pytest.fixture
def fake_load(monkeypatch):
    from revprompt.core.engine import Engine

    loaded = []

    def load(model=None, **kwargs):
        loaded.append(model)
        return FakeEngine()

    monkeypatch.setattr(Engine, "load", staticmethod(load))
    return loaded


def test_consistency_command_json_and_output(tmp_path, capsys, fake_load):
    records = [{"id": i, "prompt": p, "response": r, "source": "test"} for i, (p, r) in enumerate(pairs())]
    path = write_pairs(tmp_path / "pairs.jsonl", records)
    out = tmp_path / "scored.jsonl"
    assert run_cli("consistency", path, "--json", "--flag-fraction", "0.5", "--model", "my-model", "-o", str(out)) == 0
    assert fake_load == ["my-model"]
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["id"], r["rank"], r["flagged"]) for r in lines] == [
        (0, 1, False),
        (1, 3, False),
        (2, 4, True),
        (3, 4, True),
    ]
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [w["source"] for w in written] == ["test"] * 4  # the original record is kept
    assert [w["consistency"]["flagged"] for w in written] == [False, False, True, True]
    assert written[2]["consistency"]["perplexity"] == 10.0


def test_consistency_command_table_and_errors(tmp_path, capsys, fake_load, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # no wrapping of the prompts in the table
    path = write_pairs(tmp_path / "pairs.jsonl", [{"prompt": p, "response": r} for p, r in pairs()])
    assert run_cli("consistency", path, "--limit", "3") == 0
    shown = capsys.readouterr().out
    assert "1 of 3 pairs flagged" in shown and "Explain quantum computing" in shown
    assert "What is the capital" not in shown  # only flagged pairs without --all
    assert run_cli("consistency", path, "--all") == 0
    assert "What is the capital" in capsys.readouterr().out
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x"}\n')
    assert run_cli("consistency", str(bad)) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:1" in err and err.count("\n") == 1
