"""The web-page yardstick and the engine's drop of degenerate candidates."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from revprompt.core.types import DecodeConfig
from revprompt.training.web_eval import evaluate_pages, read_pages, strip_title

PAGE_HTML = """<!doctype html><html><head><title>Storing Lists of Values with Vectors</title></head><body>
<nav>Book menu</nav><main><h1>Storing Lists of Values with Vectors</h1>
<p>The first collection type we'll look at is Vec, also known as a vector. Vectors allow you to store more than
one value in a single data structure that puts all the values next to each other in memory.</p>
<p>Vectors can only store values of the same type. They are useful when you have a list of items.</p>
</main></body></html>"""


def test_strip_title_removes_the_heading_that_repeats_the_title():
    md = "## The `match` Control Flow Construct\n\nRust has a powerful construct called match."
    assert strip_title(md, "The match Control Flow Construct") == "Rust has a powerful construct called match."
    assert strip_title("No heading here.", "Other") == "No heading here."


@pytest.fixture
def web_index(tmp_path):
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "vec.html").write_text(PAGE_HTML)
    (pages / "match.html").write_text(PAGE_HTML.replace("Storing Lists of Values with Vectors", "Match"))
    index = tmp_path / "index.jsonl"
    index.write_text(
        "".join(
            json.dumps({"file": f"pages/{n}.html", "title": t}) + "\n"
            for n, t in (("vec", "Storing Lists of Values with Vectors"), ("match", "Match"))
        )
    )
    return index


def test_read_pages_extracts_text_without_the_title(web_index):
    pages = read_pages(web_index)
    assert [p.title for p in pages] == ["Storing Lists of Values with Vectors", "Match"]
    assert "Storing Lists of Values with Vectors" not in pages[0].text
    assert pages[0].text.startswith("The first collection type")


def test_evaluate_pages_with_a_tiny_engine_reports_junk_and_title_cosines(web_index, tiny_engine, tmp_path):
    details = tmp_path / "web.jsonl"
    report = evaluate_pages(tiny_engine, read_pages(web_index), details=details, progress=False)
    summary = report.summary()
    assert summary["pages"] == 2
    assert 0.0 <= summary["junk_rate"] <= 1.0
    assert summary["junk_pages"] == sum(1 for r in report.rows if r["junk_reasons"])
    assert -1.0 <= summary["title_cosine_top1"] <= 1.0
    # The baseline is the page's first sentence, scored against the title.
    assert report.rows[0]["baseline"].startswith("The first collection type")
    assert summary["title_cosine_first_sentence"] > 0.2
    # Every kept candidate is scored against the title, so the best of them bounds what re-ranking can reach.
    for row in report.rows:
        assert row["candidates"] and row["candidates"][0]["prompt"] == row["top1"]
        assert row["candidates"][0]["title_cosine"] == row["title_cosine_top1"]
        assert row["title_cosine_best"] == max(c["title_cosine"] for c in row["candidates"])
    assert summary["title_cosine_best_of"] >= summary["title_cosine_top1"]
    # A second run reads the details file and loads no engine.
    again = evaluate_pages(lambda: pytest.fail("engine loaded"), read_pages(web_index), details=details, progress=False)
    assert again.summary() == summary


def test_eval_pages_command_errors_are_one_line(tmp_path):
    from revprompt.core.cli import cli

    runner = CliRunner()
    result = runner.invoke(cli, ["eval", "--pages", str(tmp_path / "missing.jsonl")])
    assert result.exit_code != 0 and "no such file" in result.output and "Traceback" not in result.output
    result = runner.invoke(cli, ["eval"])
    assert result.exit_code != 0 and "either PAIRS or --pages" in result.output


def test_engine_drops_degenerate_candidates_before_ranking(tiny_engine, gemma_tokenizer):
    eos = gemma_tokenizer.eos_token_id
    prefix = gemma_tokenizer("A vector stores values.\n###\n")["input_ids"]
    good = gemma_tokenizer("What is a vector in Rust?", add_special_tokens=False)["input_ids"] + [eos]
    junk = gemma_tokenizer("toolformer: toolformer: toolformer:", add_special_tokens=False)["input_ids"] + [eos]
    cfg = DecodeConfig(2, 0.1)
    candidates, dropped, _ = tiny_engine._rank(prefix, {tuple(good): [cfg], tuple(junk): [cfg]})
    assert [c.prompt for c in candidates] == ["What is a vector in Rust?"] and dropped == 1
    # Only junk: shown rather than nothing.
    candidates, dropped, _ = tiny_engine._rank(prefix, {tuple(junk): [cfg]})
    assert len(candidates) == 1 and dropped == 0


def _prefix_and_ids(tokenizer, text: str):
    """The engine's prefix for `text` and a function giving a candidate's ids (closing EOS included)."""
    eos = tokenizer.eos_token_id
    prefix = tokenizer(text + "\n###\n")["input_ids"]
    return prefix, lambda prompt: tuple(tokenizer(prompt, add_special_tokens=False)["input_ids"] + [eos])


def test_engine_ranks_page_junk_last(tiny_engine, gemma_tokenizer):
    """A candidate copying the page, or naming a language the page never names, goes after every other one,
    whatever its perplexity; with the demotion off the order is perplexity alone."""
    page = (
        "Slices let you reference a contiguous sequence of elements in a collection rather than the whole "
        "collection, and a slice is a kind of reference, so it does not have ownership."
    )
    prefix, ids = _prefix_and_ids(gemma_tokenizer, page)
    copy = ids(
        "Slices let you reference a contiguous sequence of elements in a collection rather than the whole collection"
    )
    language = ids("How do I write a slice function in Python?")
    plain = ids("What is a slice and why does it not have ownership?")
    cfg = DecodeConfig(2, 0.1)
    sequences = {copy: [cfg], language: [cfg], plain: [cfg]}

    tiny_engine.demote_page_junk = False
    by_perplexity, _, demoted = tiny_engine._rank(prefix, sequences, page=page)
    assert demoted == 0
    assert [c.perplexity for c in by_perplexity] == sorted(c.perplexity for c in by_perplexity)

    tiny_engine.demote_page_junk = True
    try:
        ranked, _, demoted = tiny_engine._rank(prefix, sequences, page=page)
    finally:
        tiny_engine.demote_page_junk = True
    assert demoted == 2
    assert ranked[0].prompt == "What is a slice and why does it not have ownership?" and ranked[0].rank == 1
    tail = ranked[1:]
    assert {c.prompt for c in tail} == {c.prompt for c in by_perplexity} - {ranked[0].prompt}
    assert [c.perplexity for c in tail] == sorted(c.perplexity for c in tail)
    # Without a page there is nothing to compare against: perplexity alone.
    unpaged, _, demoted = tiny_engine._rank(prefix, sequences)
    assert demoted == 0 and [c.prompt for c in unpaged] == [c.prompt for c in by_perplexity]


def test_a_response_keeps_its_restated_prompt(tiny_engine, gemma_tokenizer):
    """An assistant's answer often restates its prompt, so on a 'response' a verbatim copy keeps its perplexity
    rank; a language the text never names is still ranked last. On a 'page' both go last."""
    text = (
        "Yes, you can cook an egg using direct sunlight in some places with very hot weather, but it takes a "
        "long time and the result is not always safe to eat."
    )
    prefix, ids = _prefix_and_ids(gemma_tokenizer, text)
    copy = ids("can you cook an egg using direct sunlight in some places with very hot weather")
    language = ids("Write a Python function that cooks an egg")
    plain = ids("Is sunlight hot enough to cook an egg?")
    cfg = DecodeConfig(2, 0.1)
    sequences = {copy: [cfg], language: [cfg], plain: [cfg]}
    copy_text = "can you cook an egg using direct sunlight in some places with very hot weather"

    by_perplexity, _, _ = tiny_engine._rank(prefix, sequences)
    as_response, _, demoted = tiny_engine._rank(prefix, sequences, page=text, kind="response")
    assert demoted == 1 and as_response[-1].prompt == "Write a Python function that cooks an egg"
    expected = [c.prompt for c in by_perplexity if c.prompt != "Write a Python function that cooks an egg"]
    assert [c.prompt for c in as_response[:2]] == expected
    as_page, _, demoted = tiny_engine._rank(prefix, sequences, page=text, kind="page")
    assert demoted == 2 and as_page[0].prompt == "Is sunlight hot enough to cook an egg?"
    assert copy_text in {c.prompt for c in as_page[1:]}
    with pytest.raises(ValueError, match="kind must be one of"):
        tiny_engine._rank(prefix, sequences, page=text, kind="article")
