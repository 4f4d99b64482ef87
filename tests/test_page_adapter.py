"""A page adapter of its own: when an adapter names one (revprompt.json "page_adapter"), web pages are read by
it and everything else by the adapter itself, one text at a time, in mixed batches, and when scoring; the second
model loads only when a page comes. Why: docs/model.md §20 (page training then costs chat quality nothing)."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import make_tiny_gemma
from test_page_separator import CHAT, PAGE, PAGES, _train

from revprompt.core.engine import Engine
from revprompt.core.errors import UserError
from revprompt.core.prompt_format import PAGE_SEPARATOR

REPLY = "The capital of France is Paris, a city on the Seine with many museums."


def _prompts(result):
    return [c.prompt for c in result.candidates]


@pytest.fixture(scope="module")
def pair(gemma_tokenizer):
    chat = Engine(make_tiny_gemma(seed=5), gemma_tokenizer, model_name="chat", max_new_tokens=6)
    page = Engine(
        make_tiny_gemma(seed=6), gemma_tokenizer, model_name="pages", max_new_tokens=6, page_separator=PAGE_SEPARATOR
    )
    return chat, page


def test_pages_go_to_the_page_engine_and_the_rest_stays(pair, gemma_tokenizer):
    chat, page = pair
    loads = []

    def load_pages():
        loads.append(1)
        return page

    both = Engine(
        chat.model,
        gemma_tokenizer,
        model_name="chat",
        max_new_tokens=6,
        page_engine=load_pages,
        page_model_name="pages",
    )
    assert both.describe()["page_model"] == "pages"
    assert _prompts(both.sweep(REPLY)) == _prompts(chat.sweep(REPLY)) and loads == []  # no page, no second model
    alone = page.sweep(PAGE, kind="page")
    assert _prompts(both.sweep(PAGE, kind="page")) == _prompts(alone) and loads == [1]
    assert _prompts(alone) != _prompts(chat.sweep(PAGE, kind="page"))  # the two models do differ
    assert both.separator("page") == PAGE_SEPARATOR and both.separator("response") == chat.separator("response")

    # a batch of both kinds: each text read by its own engine, yielded in the batch's order
    texts, kinds = [PAGE, REPLY, PAGE], ["page", "response", "page"]
    batch = list(both.sweep_many(texts, batch_docs=3, kinds=kinds))
    assert [i for i, _ in batch] == [0, 1, 2]
    assert [_prompts(r) for _, r in batch] == [_prompts(alone), _prompts(chat.sweep(REPLY)), _prompts(alone)]
    assert loads == [1]

    prompts = ["Explain dependency resolution.", "Write a poem."]
    assert [c.perplexity for c in both.score(PAGE, prompts, kind="page")] == [
        c.perplexity for c in page.score(PAGE, prompts, kind="page")
    ]
    assert both.for_kind("response") is both and both.for_kind("page") is page


def test_an_adapter_that_names_a_page_adapter_loads_it_on_the_first_page(tmp_path, tiny_model_dir, gemma_tokenizer):
    chat, _ = _train(tmp_path, "chat", tiny_model_dir, gemma_tokenizer, CHAT)
    pages, _ = _train(tmp_path, "pages", tiny_model_dir, gemma_tokenizer, CHAT + PAGES)
    shutil.copytree(pages, chat / "page")
    meta = json.loads((chat / "revprompt.json").read_text())
    (chat / "revprompt.json").write_text(json.dumps({**meta, "page_adapter": "page"}))

    engine = Engine.load(str(chat), max_new_tokens=6)
    assert engine.describe()["page_model"] == f"{chat}:page" and engine.page_separator is None
    assert not isinstance(engine._page_engine, Engine)  # not loaded before a page comes
    got = engine.sweep(PAGE, kind="page")
    assert engine.page_engine.page_separator == PAGE_SEPARATOR  # the page adapter's own recorded separator
    assert _prompts(got) == _prompts(Engine.load(str(pages), max_new_tokens=6).sweep(PAGE, kind="page"))
    assert got.n_input_tokens == len(engine.page_engine.encode(PAGE, "page").ids)

    (chat / "revprompt.json").write_text(json.dumps({**meta, "page_adapter": "nowhere"}))
    with pytest.raises(UserError, match="holds no adapter"):
        Engine.load(str(chat), max_new_tokens=6)
