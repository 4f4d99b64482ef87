"""The preference segment (training/prefer.py): which candidates are rejected, the length-normalised
log-probabilities it compares, and a tiny model that learns to prefer the true prompt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from revprompt.training.data import Pair, collate, tokenize_pairs
from revprompt.training.prefer import (
    PreferConfig,
    Preference,
    mean_logps,
    preferences_from_mined,
    read_mined,
    train_preferences,
)
from tests.conftest import cli_runner, make_tiny_gemma


def _row(prompt, *cands):
    return {"prompt": prompt, "response": "r", "candidates": [{"prompt": p, "f1": f} for p, f in cands]}


def test_rejects_candidates_ranked_above_a_clearly_better_one():
    row = _row("true", ("a", 0.2), ("b", 0.5), ("c", 0.9), ("d", 0.1))
    prefs = preferences_from_mined([row], gap=0.15, miss=0.3)
    # a and b sit above c (the best) and are 0.7 and 0.4 worse; d is below the best, so it never mattered.
    assert [p.rejected for p in prefs] == ["a", "b"]
    assert all(p.chosen == "true" and p.response == "r" for p in prefs)
    # Within the gap of the best: ranked right enough.
    assert preferences_from_mined([_row("true", ("a", 0.8), ("c", 0.9))], gap=0.15, miss=0.3) == []


def test_a_clear_miss_is_rejected_even_with_no_better_candidate():
    assert [p.rejected for p in preferences_from_mined([_row("true", ("a", 0.2), ("b", 0.1))])] == ["a"]
    assert preferences_from_mined([_row("true", ("a", 0.5), ("b", 0.1))], miss=0.3) == []


def test_per_row_cap_and_the_true_prompt_is_never_rejected():
    row = _row("same", ("x", 0.0), ("same ", 0.0), ("y", 0.0), ("best", 1.0))
    assert [p.rejected for p in preferences_from_mined([row], per_row=5)] == ["x", "y"]
    assert [p.rejected for p in preferences_from_mined([row], per_row=1)] == ["x"]
    assert preferences_from_mined([{"prompt": "p", "response": "r", "candidates": []}]) == []


def test_read_mined_names_the_bad_line(tmp_path):
    path = tmp_path / "mined.jsonl"
    good = json.dumps(_row("p", ("a", 0.1)))
    path.write_text(good + "\n" + json.dumps({"prompt": "p"}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"mined.jsonl:2: expected a JSON object"):
        read_mined(path)
    # A Unicode line separator inside a response is text, not a line break.
    path.write_text(json.dumps({**_row("p"), "response": "one\u2028two"}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert read_mined(path)[0]["response"] == "one\u2028two"


def test_mean_logps_equal_the_full_models_on_a_padded_batch(gemma_tokenizer):
    model = make_tiny_gemma(seed=3)
    examples = tokenize_pairs(
        gemma_tokenizer,
        [
            Pair("What is the capital of France?", "Paris is the capital."),
            Pair("Hi there", "A longer response text here."),
        ],
    )
    batch = collate(examples, gemma_tokenizer.pad_token_id)
    with torch.no_grad():
        got = mean_logps(model, batch)
        for row, ex in enumerate(examples):
            ids = torch.tensor([ex.input_ids])
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
            labels = torch.tensor(ex.labels[1:])
            keep = labels != -100
            want = logp[keep].gather(1, labels[keep][:, None]).mean()
            assert got[row].item() == pytest.approx(want.item(), abs=1e-4)


def test_a_tiny_model_learns_to_prefer_the_true_prompt(tmp_path, gemma_tokenizer):
    model = make_tiny_gemma(seed=4)
    prefs = [
        Preference(
            "The capital of France is Paris, on the Seine.", "What is the capital of France?", "Tell me a joke."
        ),
        Preference("Water boils at 100 degrees Celsius at sea level.", "At what temperature does water boil?", "Hi"),
    ] * 4

    def margin_now():
        examples = tokenize_pairs(
            gemma_tokenizer, [Pair(p, prefs[0].response) for p in (prefs[0].chosen, prefs[0].rejected)]
        )
        with torch.no_grad():
            lp = mean_logps(model, collate(examples, gemma_tokenizer.pad_token_id))
        return float(lp[0] - lp[1])

    before = margin_now()
    cfg = PreferConfig(
        data="unused",
        out_dir=str(tmp_path / "out"),
        epochs=4,
        batch_pairs=4,
        lr=5e-3,
        warmup_steps=1,
        bf16=False,
        progress=False,
    )
    record = train_preferences(cfg, model=model, tokenizer=gemma_tokenizer, prefs=prefs)
    model.eval()
    assert record["steps"] == 8 and record["preference_pairs"] == 8
    assert record["margins"][0] == pytest.approx(0.0, abs=1e-3)  # the reference is the starting model
    assert record["margins"][-1] > 1.0
    assert margin_now() > before + 0.5
    meta = json.loads((tmp_path / "out" / "adapter" / "revprompt.json").read_text())
    assert meta["examples_seen_total"] == 4 * 8
    assert record["lr_last"] < cfg.lr  # ends decayed
    # scripts/ship_adapter.py records such a segment with its objective, not the SFT trainer's fields.
    import importlib.util

    spec = importlib.util.spec_from_file_location("ship_adapter", Path(__file__).parents[1] / "scripts/ship_adapter.py")
    ship = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ship)
    entry = ship.segment_entry(tmp_path / "out", "revprompt train-preferences ...")
    assert entry["kind"].startswith("preference") and entry["preference_pairs"] == 8
    assert entry["examples_seen"] == 32 and entry["objective"]["epochs"] == 4 and entry["lr_last"] == record["lr_last"]


def test_cli_says_when_nothing_was_ranked_wrong(tmp_path, monkeypatch, capsys):
    mined = tmp_path / "mined.jsonl"
    mined.write_text(json.dumps(_row("p", ("p2", 0.9))) + "\n", encoding="utf-8")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    run = cli_runner(monkeypatch, capsys, lambda: None)
    code, _, err = run("train-preferences", mined, "-o", tmp_path / "out", "--init-adapter", adapter)
    assert code == 1 and "no preference pairs" in err
    mined.write_text("not json\n", encoding="utf-8")
    code, _, err = run("train-preferences", mined, "-o", tmp_path / "out", "--init-adapter", adapter)
    assert code == 1 and "mined.jsonl:1" in err
