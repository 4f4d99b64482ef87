"""Chat pairs that read as a page and its request, relabelled as page pairs (datagen/page_requests.py)."""

from __future__ import annotations

import json

from conftest import cli_runner

from revprompt.datagen.page_requests import is_page_request
from revprompt.training.data import read_pairs

LONG = "Saving money on a trip starts before you book. " * 20


def test_requests_for_writing_on_a_topic_qualify():
    for prompt in (
        "Write a blog post about how to save money on a vacation.",
        "Explain the differences between supervised and unsupervised learning.",
        "what is asset optimization and how is it used in business?",
        "Tell me about the GCSE English course in the UK",
    ):
        assert is_page_request(prompt, LONG), prompt


def test_requests_that_point_outside_the_page_or_short_answers_do_not():
    for prompt in (
        "Summarize the following text.",  # an input the page does not show
        "Explain this code.",
        "What is my best option for a laptop?",  # the conversation, not the topic
        "Can you write an article about dogs?",  # not a request form the pattern knows
        "Write an essay about dogs.\nMake it funny.",  # more than one line
        "Explain " + "very " * 30 + "much.",  # too long to be a topic request
    ):
        assert not is_page_request(prompt, LONG), prompt
    assert not is_page_request("Write an essay about dogs.", "Dogs are loyal.")  # not long-form


def test_page_requests_command_writes_page_pairs(tmp_path, monkeypatch, capsys):
    run = cli_runner(monkeypatch, capsys, lambda: None)  # no model: reads JSONL only
    src = tmp_path / "chat.jsonl"
    rows = [
        {"prompt": "Write an essay about the benefits of public transportation.", "response": LONG, "source": "a"},
        {"prompt": "Summarize the following text.\n\nBuses are good.", "response": LONG, "source": "a"},
        {"prompt": "What is a class in C++?", "response": LONG, "source": "b"},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "pages.jsonl"
    code, output, err = run("datagen", "page-requests", src, "-o", out)
    assert code == 0, err
    assert "2 page pairs of 3 read" in output
    pairs = read_pairs([out])
    assert [p.prompt for p in pairs] == [rows[0]["prompt"], rows[2]["prompt"]]
    assert {p.kind for p in pairs} == {"page"} and [p.source for p in pairs] == ["a", "b"]
