"""Junk candidates and training-data cleaning: the rules that keep tool templates and copies out."""

import json

import pytest

from revprompt.core.junk import degenerate, junk_reasons, languages_named, page_junk, repeated
from revprompt.core.types import Document
from revprompt.training.clean import CleanConfig, clean_files, clean_pairs
from revprompt.training.data import Pair

PAGE = "Rust's Vec<T> stores values next to each other in memory. Use push to add elements to a vector."


def test_degenerate_catches_templates_and_repeats_only():
    assert degenerate("toolformer: enabled toolformer access: shell") == "template"
    assert degenerate("toolformer: toolformer: toolformer: toolformer:") == "template"
    assert degenerate("Explain {{topic}} to a child") == "template"
    assert degenerate("the vector the vector the vector the vector") == "repetition"
    assert degenerate("Explain how vectors store values in Rust") is None
    assert degenerate("Please write in English language.") == "template"  # the ShareGPT extension's line alone
    assert degenerate("Share Prompt") == "template" and degenerate("Please write in English language. Share Prompt")
    assert degenerate("Share Prompt ideas for a bakery") is None  # words, not the button at the end
    assert "template" in junk_reasons("please write in French language", PAGE)
    assert degenerate("Write a poem about rain. Please write in English language.") is None  # a prompt with it
    assert degenerate("Write a short story about a cat who learns to swim") is None
    assert not repeated("a b a c")  # too short to call
    for prompt in ("What is a vector in Rust?", "How do I sort a list in place?", "Name three red fruits please"):
        assert not repeated(prompt), prompt  # n-grams said once are no repeat, however short the prompt
    assert repeated("red fruits red fruits red fruits and more")
    assert not repeated("red fruits red fruits and more")  # twice is emphasis, not a loop
    # Runs of characters that word n-grams cannot see (seen as top-1 on dev pairs and web pages).
    for prompt in (
        "Brainstorm " + "_" * 80,
        "cargo rust " + "-" * 60,
        "what is aclid " + "❓" * 30,
        "You are a fanfiction writer who's written 1" + "0" * 30,
        "I'm looking for vestibular neuritis information. " + "ݘ" * 20,
        "explain this " + "ab" * 10,
        "1. 2. 3. 4. 5. 6. 7. 8. 9. 10. 11. 12. 13. 14. 1",
    ):
        assert degenerate(prompt) == "repetition", prompt
        assert "repetition" in junk_reasons(prompt, PAGE), prompt
    for prompt in (
        "Fill in the blank: the capital of France is ____.",
        "Summarise --- then list 1000000 items",
        "Sort 3.5 2.1 4.0 1.2 9.9 in order",
        "List 5 fruits: 1. apple 2. pear 3. plum 4. fig 5. kiwi",
    ):
        assert not repeated(prompt), prompt  # a blank or a short rule is not a loop


def test_junk_reasons_judge_against_the_page():
    assert junk_reasons("Write a C++ function that adds to a vector", PAGE) == ["language"]
    assert junk_reasons("How do I add elements to a Rust vector?", PAGE) == []
    assert "url" in junk_reasons("Summarize https://example.com/vec", PAGE)
    assert "code_fence" in junk_reasons("Fix this: ```let v = 1;```", PAGE)
    assert junk_reasons("Vec", PAGE) == ["too_short"]
    assert "too_long" in junk_reasons(" ".join(["word"] * 30 + ["other"] * 31), PAGE)
    copy = "Rust's Vec<T> stores values next to each other in memory. Use push to add elements"
    assert "verbatim" in junk_reasons(copy, PAGE)
    assert languages_named("Write a Go program") == {"Go"}
    assert languages_named("Let's go to the park") == set()


def test_a_copy_is_page_junk_on_a_page_only():
    """A long verbatim copy counts against a web page, not against an assistant's response (which often
    restates its prompt); a language the text never names counts against both."""
    copy = "Rust's Vec<T> stores values next to each other in memory. Use push to add elements"
    assert page_junk(copy, PAGE) == ["verbatim"] == page_junk(copy, PAGE, "page")
    assert page_junk(copy, PAGE, "response") == []
    assert page_junk("Write a C++ function that adds to a vector", PAGE, "response") == ["language"]


@pytest.mark.parametrize(
    "source, uri, meta, kind",
    [
        ("text", "text:ab12", {}, "response"),
        ("stdin", "text:ab12", {}, "response"),
        ("file", "/notes/answer.md", {}, "response"),
        ("file", "/notes/answer.txt", {}, "response"),
        ("file", "/site/Vec.HTML", {}, "page"),
        ("url", "https://example.com/", {}, "page"),
        ("crawl", "https://example.com/a", {}, "page"),
        ("dataforseo", "https://example.com/b", {}, "page"),
        ("text", "text:ab12", {"kind": "page"}, "page"),
        ("url", "https://example.com/", {"kind": "response"}, "response"),
    ],
)
def test_document_kind_follows_its_source(source, uri, meta, kind):
    assert Document(uri=uri, source=source, meta=meta).kind == kind


def _pairs():
    return [
        Pair("What is a vector in Rust?", "A vector is a growable array.", "sharegpt"),
        Pair("what is a VECTOR in rust", "Vectors grow.", "sharegpt"),  # near duplicate of the first
        Pair("toolformer: enabled. Use the calculator to add 2 and 3", "5", "gpteacher"),
        Pair("https://example.com/page", "A page.", "sharegpt"),
        Pair("hi", "Hello! How can I help?", "sharegpt"),
        Pair(" ".join(["long"] * 70), "Too long.", "sharegpt"),
        Pair(
            "Rewrite this: the quick brown fox jumps over the lazy dog every single day",
            "the quick brown fox jumps over the lazy dog every single day, rewritten",
            "sharegpt",
        ),
        Pair("Identify the odd one out.\n\nTwitter, Instagram, Telegram", "Telegram", "alpaca52k_davinci003"),
        Pair("Give three tips for staying healthy.", "Eat well, sleep, move.", "alpaca52k_davinci003"),
        Pair("Write a haiku about autumn rain\n\nPlease write in English language.", "Rain on leaves.", "sharegpt"),
        Pair("Please write in English (UK) language.", "Certainly.", "sharegpt"),  # nothing left: too short
        Pair("Plan a week in Lisbon for two Share Prompt", "Day 1: Alfama.", "sharegpt"),
        Pair("Explain monads in Haskell Please write in English language.지금 번역하기", "A monad ...", "sharegpt"),
    ]


def test_clean_pairs_counts_each_rule():
    kept, report = clean_pairs(_pairs(), CleanConfig(input_joined_keep=0.0))
    assert sorted(p.prompt for p in kept) == [
        "Explain monads in Haskell",  # both extensions' lines cut off
        "Give three tips for staying healthy.",
        "Plan a week in Lisbon for two",  # the "Share Prompt" button cut off
        "What is a vector in Rust?",
        "Write a haiku about autumn rain",  # the output-language line cut off
    ]
    assert report.to_dict()["rewritten"] == {"language_suffix": 3, "extension_tail": 2}
    dropped = report.to_dict()["dropped"]
    assert dropped == {
        "template": 1,
        "url_only": 1,
        "too_short": 2,
        "too_long": 1,
        "copies_response": 1,
        "near_duplicate": 1,
        "input_joined": 1,
        "cap": 0,
    }
    assert report.read == 13 and report.kept == 5


def test_clean_files_writes_shuffled_pairs_and_a_recipe(tmp_path):
    src = tmp_path / "alpaca52k_davinci003.jsonl"
    src.write_text(
        "".join(
            json.dumps({"prompt": f"Name {i} kinds of fruit", "response": "Apple, pear."}) + "\n" for i in range(20)
        )
    )
    out = tmp_path / "clean.jsonl"
    report = clean_files([str(src)], out, CleanConfig(caps={"alpaca52k": 5}))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 5 == report.kept
    assert {r["source"] for r in rows} == {"alpaca52k_davinci003"}
    recipe = json.loads((tmp_path / "clean.jsonl.recipe.json").read_text())
    assert recipe["dropped"]["cap"] == 15 and recipe["kept"] == 5
