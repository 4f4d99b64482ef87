"""`revprompt sharegpt-turns`: later ShareGPT turns that read on their own become pairs; held-out data stays out."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from revprompt.core.cli import cli
from revprompt.core.errors import UserError
from revprompt.training.sharegpt import TurnReport, read_conversations, stands_alone, turn_pairs

ANSWER = "Here is a detailed answer that explains the subject step by step, " * 4  # 48 words: long enough


def conv(cid, *prompts, answer=ANSWER):
    turns = []
    for p in prompts:
        turns += [{"from": "human", "value": p}, {"from": "gpt", "value": answer}]
    return {"id": cid, "conversations": turns}


@pytest.mark.parametrize(
    "prompt",
    [
        "What is a higher order function in Haskell?",
        "Plan a 5 day trip to Banff national park in June with a toddler",
        "Explain Bayesian networks with python code for causal inference",
    ],
)
def test_prompts_that_read_on_their_own(prompt):
    assert stands_alone(prompt)


@pytest.mark.parametrize(
    "prompt",
    [
        "make it shorter and more formal",
        "now do the same for Java",
        "explain the above in simple words",
        "format the code using black",
        "ok show me a table of these industries",
        "What about the price of the second option?",
        "Can you rewrite the story with a happy ending",
        "you just said something different about taxes",
    ],
)
def test_prompts_that_lean_on_the_conversation(prompt):
    assert not stands_alone(prompt)


def test_turns_kept_and_skipped_for_each_reason():
    conversations = [
        # first turn already in the training file: skipped; its later, self-standing turn is kept
        conv("aaa_0", "How do I sort a list in Python quickly?", "What is the capital city of Australia today?"),
        # a later part of a conversation the dev set holds a part of: skipped whole
        conv("dev1_3", "Write a haiku about autumn leaves falling", "Describe the water cycle for children"),
        # a part after the first starts mid-conversation: its first turn is judged as a later turn
        conv("bbb_2", "make it shorter please", "Summarise the causes of the First World War"),
        # a new conversation: its first turn is kept even though it would not stand alone as a later turn
        conv("ccc_0", "Write it as a poem about the sea and sailors", "then continue"),
        # short answers teach nothing; a dev prompt and a repeated prompt are not written again
        conv("ddd_0", "List three prime numbers between ten and twenty", answer="11, 13, 17."),
        conv("eee_0", "What are some good browser alternatives to Chrome?"),
        conv("fff_0", "What is the capital city of Australia today?"),
    ]
    held_out = [
        {"id": "sharegpt_dev1_0", "prompt": "an unrelated dev prompt"},
        {"id": "ae_1", "prompt": "What are some good browser alternatives to Chrome"},
    ]
    seen = [{"id": "sharegpt_aaa_0", "prompt": "How do I sort a list in Python quickly?"}]
    report = TurnReport()
    pairs = list(turn_pairs(conversations, held_out, seen, report))
    assert [p["prompt"] for p in pairs] == [
        "What is the capital city of Australia today?",
        "Summarise the causes of the First World War",
        "Write it as a poem about the sea and sailors",
    ]
    assert pairs[0]["id"] == "sharegpt_aaa_0#1" and pairs[0]["source"] == "sharegpt_turns"
    assert report.written == 3
    assert report.skipped == {
        "first_turn_in_training_file": 1,
        "held_out_conversation": 2,
        "leans_on_the_conversation": 2,
        "short_response": 1,
        "dev_prompt": 1,
        "prompt_seen": 1,
    }


def test_the_extension_tails_are_cut_from_prompts():
    report = TurnReport()
    pairs = list(turn_pairs([conv("x_0", "Explain how DNS resolution works Share Prompt")], [], [], report))
    assert pairs[0]["prompt"] == "Explain how DNS resolution works"


def test_a_file_cut_short_yields_its_complete_conversations(tmp_path):
    whole = json.dumps([conv("a_0", "first question here please"), conv("b_0", "second question here please")])
    path = tmp_path / "sg.json"
    path.write_text(whole[: whole.index("second") + 5])  # ends inside a string, as the package's file does
    report = TurnReport()
    got = list(read_conversations(path, report))
    assert [c["id"] for c in got] == ["a_0"] and report.truncated and report.conversations == 1
    path.write_text(whole)
    report = TurnReport()
    assert len(list(read_conversations(path, report))) == 2 and not report.truncated


def test_the_command_writes_pairs_and_a_recipe(tmp_path):
    sg = tmp_path / "sg.json"
    sg.write_text(
        json.dumps([conv("a_0", "How does TCP congestion control work?", "Explain the CAP theorem with examples")])
    )
    dev = tmp_path / "dev.jsonl"
    dev.write_text(json.dumps({"id": "ae_1", "prompt": "Explain the CAP theorem, with examples!"}) + "\n")
    out = tmp_path / "out" / "turns.jsonl"
    result = CliRunner().invoke(cli, ["sharegpt-turns", str(sg), "-o", str(out), "--held-out", str(dev)])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["prompt"] for line in out.read_text().splitlines()] == [
        "How does TCP congestion control work?"
    ]
    recipe = json.loads((tmp_path / "out" / "turns.jsonl.recipe.json").read_text())
    assert recipe["written"] == 1 and recipe["skipped"] == {"dev_prompt": 1}


@pytest.mark.parametrize(
    ("sharegpt", "dev", "message"),
    [
        ("missing.json", '{"prompt": "x"}\n', "cannot read the ShareGPT file"),
        ('{"id": "a"}', '{"prompt": "x"}\n', "not a ShareGPT JSON array"),
        ("[]", "not json\n", "line 1: not a JSON pair"),
        ("[]", '{"text": "no prompt"}\n', "line 1: not a JSON pair"),
    ],
)
def test_bad_inputs_give_a_clear_error(tmp_path, sharegpt, dev, message):
    sg = tmp_path / "sg.json"
    if sharegpt != "missing.json":
        sg.write_text(sharegpt)
    held = tmp_path / "dev.jsonl"
    held.write_text(dev)
    result = CliRunner().invoke(
        cli, ["sharegpt-turns", str(sg), "-o", str(tmp_path / "o.jsonl"), "--held-out", str(held)]
    )
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert not isinstance(result.exception, UserError)  # turned into a click error, not raised
