"""Pages get their own separator: page pairs are trained with it, the adapter records it, the engine reads pages
with it (and only pages, and only with an adapter that recorded it). Why: docs/model.md §17."""

from __future__ import annotations

import json

import pytest
from conftest import make_tiny_gemma

from revprompt.core.engine import Engine
from revprompt.core.prompt_format import PAGE_SEPARATOR, SEPARATOR
from revprompt.training.data import Pair, read_pairs, tokenize_pairs
from revprompt.training.train import TrainConfig, train

PAGE = "Cargo resolves dependencies from the manifest and records the versions it chose in a lock file."
CHAT = [
    Pair("What is the capital of France?", "The capital of France is Paris, on the Seine."),
    Pair("Name a red fruit", "Strawberries and apples are red fruits."),
]
PAGES = [Pair("Explain dependency resolution.", PAGE, "docs:Cargo", "page")]


def test_page_pairs_are_tokenized_with_the_page_separator(gemma_tokenizer, tmp_path):
    chat, page = tokenize_pairs(gemma_tokenizer, [CHAT[0], PAGES[0]])
    decode = gemma_tokenizer.decode
    assert decode(chat.input_ids, skip_special_tokens=True) == CHAT[0].response + SEPARATOR + CHAT[0].prompt
    assert decode(page.input_ids, skip_special_tokens=True) == PAGE + PAGE_SEPARATOR + PAGES[0].prompt
    # the loss stays on the prompt only, after either separator
    n_prompt = len(gemma_tokenizer(PAGES[0].prompt, add_special_tokens=False)["input_ids"]) + 1
    assert sum(1 for label in page.labels if label != -100) == n_prompt

    data = tmp_path / "pairs.jsonl"
    rows = [
        {"prompt": "a?", "response": "A page.", "kind": "page"},
        {"prompt": "b?", "response": "A reply."},
        {"prompt": "c?", "response": "Odd kind.", "kind": "poster"},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [p.kind for p in read_pairs([data])] == ["page", "response", "response"]


def _train(tmp_path, name, base, tokenizer, pairs, init=None):
    cfg = TrainConfig(
        data=[],
        out_dir=str(tmp_path / name),
        base_model=base,
        max_steps=2,
        batch_size=2,
        grad_accum=1,
        warmup_steps=1,
        lora_r=4,
        max_response_tokens=32,
        init_adapter=init,
        progress=False,
    )
    train(cfg, tokenizer=tokenizer, pairs=pairs)
    adapter = tmp_path / name / "adapter"
    return adapter, json.loads((adapter / "revprompt.json").read_text())


def test_the_adapter_records_the_separator_and_the_engine_uses_it(tmp_path, tiny_model_dir, gemma_tokenizer):
    from revprompt.core.model import resolve

    chat_only, meta = _train(tmp_path, "chat", tiny_model_dir, gemma_tokenizer, CHAT)
    assert "page_separator" not in meta
    with_pages, meta = _train(tmp_path, "pages", tiny_model_dir, gemma_tokenizer, CHAT + PAGES)
    assert meta["page_separator"] == PAGE_SEPARATOR
    # a later segment on chat pairs alone keeps what the adapter it continues learned
    _, meta = _train(tmp_path, "next", tiny_model_dir, gemma_tokenizer, CHAT, init=str(with_pages))
    assert meta["page_separator"] == PAGE_SEPARATOR

    assert resolve(str(chat_only)).page_separator is None
    assert resolve(str(with_pages)).page_separator == PAGE_SEPARATOR
    engine = Engine.load(str(with_pages), max_new_tokens=6)
    assert engine.page_separator == PAGE_SEPARATOR and engine.describe()["page_separator"] is True
    assert Engine.load(str(chat_only), max_new_tokens=6).page_separator is None


@pytest.fixture(scope="module")
def engines(gemma_tokenizer):
    model = make_tiny_gemma(seed=5)
    plain = Engine(model, gemma_tokenizer, model_name="tiny", max_new_tokens=6)
    paged = Engine(model, gemma_tokenizer, model_name="tiny", max_new_tokens=6, page_separator=PAGE_SEPARATOR)
    return plain, paged


def test_pages_and_only_pages_are_read_with_it(engines, gemma_tokenizer):
    plain, paged = engines
    sep = gemma_tokenizer(SEPARATOR, add_special_tokens=False)["input_ids"]
    page_sep = gemma_tokenizer(PAGE_SEPARATOR, add_special_tokens=False)["input_ids"]
    assert paged.encode(PAGE, "page").ids[-len(page_sep) :] == page_sep
    assert paged.encode(PAGE, "response").ids == plain.encode(PAGE, "page").ids == plain.encode(PAGE).ids
    assert plain.encode(PAGE).ids[-len(sep) :] == sep

    as_page, as_response = paged.sweep(PAGE, kind="page"), paged.sweep(PAGE, kind="response")
    assert as_page.n_input_tokens == len(paged.encode(PAGE, "page").ids)
    assert as_response.n_input_tokens == len(plain.encode(PAGE).ids)
    # a batch reads each text by its own kind, as one text at a time does
    batch = dict(paged.sweep_many([PAGE, PAGE], batch_docs=2, kinds=["page", "response"]))
    assert [batch[0].n_input_tokens, batch[1].n_input_tokens] == [as_page.n_input_tokens, as_response.n_input_tokens]
    assert [c.prompt for c in batch[0].candidates] == [c.prompt for c in as_page.candidates]

    prompts = ["Explain dependency resolution.", "Write a poem."]
    page_scores = [c.perplexity for c in paged.score(PAGE, prompts, kind="page")]
    assert page_scores != [c.perplexity for c in paged.score(PAGE, prompts)]
    assert [c.perplexity for c in plain.score(PAGE, prompts, kind="page")] == [
        c.perplexity for c in plain.score(PAGE, prompts)
    ]
