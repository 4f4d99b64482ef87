"""The real packaged Gemma 3 270M (plus the shipped adapter when there is one): load, sweep, store, compare."""

from __future__ import annotations

import pytest

from revprompt.core.engine import Engine
from revprompt.core.store import Store
from revprompt.core.types import Document

pytestmark = pytest.mark.integration

TEXT = (
    "Here are five simple ways to sleep better tonight. First, keep a regular schedule and go to bed at the "
    "same time every day. Second, keep your bedroom cool, dark and quiet. Third, avoid caffeine after lunch. "
    "Fourth, put screens away an hour before bed. Fifth, get some daylight and exercise during the day."
)


def test_real_model_short_sweep_is_ranked_and_stored(real_engine, db_path):
    real_engine.max_new_tokens = 24
    result = real_engine.sweep(TEXT)
    assert result.candidates, "the real model produced no candidate"
    # Ranked by perplexity, except candidates that are junk for this page (core/junk.py), which come last.
    kept = len(result.candidates) - result.demoted
    for group in (result.candidates[:kept], result.candidates[kept:]):
        assert [c.perplexity for c in group] == sorted(c.perplexity for c in group)
    best = result.candidates[0]
    assert best.prompt.strip() and best.perplexity < 1000
    with Store(db_path) as store:
        run = store.create_run("test", real_engine.model_name)
        store.save_document(run, Document(uri="text:t", text=TEXT, status="done"), result)
        assert store.query("SELECT count(*) FROM candidates")[1][0][0] == len(result.candidates)


def test_fast_sweep_equals_reference_on_real_model(real_engine):
    fast = Engine(real_engine.model, real_engine.tokenizer, max_new_tokens=12, method="fast")
    ref = Engine(real_engine.model, real_engine.tokenizer, max_new_tokens=12, method="reference")
    a, b = ref.sweep(TEXT), fast.sweep(TEXT)
    assert [c.token_ids for c in a.candidates] == [c.token_ids for c in b.candidates]
    for x, y in zip(a.candidates, b.candidates):
        assert x.perplexity == pytest.approx(y.perplexity, rel=1e-3)


def test_channel_rerank_loads_the_base_and_reorders_the_best_five(real_engine):
    """`--rerank channel` on the real model: the base model (no adapter) scores the texts' opening after each of
    the best five, and their order follows -log ppl + weight * channel; the candidates themselves are unchanged."""
    import math

    from revprompt.core import channel

    engine = Engine.load(dtype="float32", rerank="channel", max_new_tokens=24)
    assert engine.channel_model is not engine.model
    real_engine.max_new_tokens = 24
    plain, ranked = real_engine.sweep(TEXT), engine.sweep(TEXT)
    assert sorted(c.prompt for c in plain.candidates) == sorted(c.prompt for c in ranked.candidates)
    head = [c for c in ranked.candidates if c.channel is not None]
    assert len(head) == min(channel.DEFAULT_TOP, len(ranked.candidates) - ranked.demoted) >= 2
    combined = [-math.log(c.perplexity) + channel.DEFAULT_WEIGHT * c.channel for c in head]
    assert combined == sorted(combined, reverse=True) and ranked.candidates[: len(head)] == head
    # A log-probability per token of a real text under the base model: negative, and not absurdly so.
    assert all(-8 < c.channel < 0 for c in head)


PAGE = (
    "Cargo is the Rust package manager. Cargo downloads your Rust package's dependencies, compiles your packages, "
    "makes distributable packages, and uploads them to crates.io, the Rust community's package registry."
)


def test_the_shipped_model_reads_pages_with_its_page_adapter(real_engine):
    """The shipped adapter names a page adapter (model/adapter/page): a page is swept by a second model that reads
    it after the page separator, a response by the chat adapter."""
    from revprompt.core.model import SHIPPED_ADAPTER, resolve
    from revprompt.core.prompt_format import PAGE_SEPARATOR

    if resolve().page_adapter is None:
        pytest.skip("this build ships no page adapter")
    assert real_engine.describe()["page_model"] == "shipped:page"
    real_engine.max_new_tokens = 24
    as_page = real_engine.sweep(PAGE, kind="page")
    pages = real_engine.page_engine
    assert pages is not None and pages.model is not real_engine.model and pages.page_separator == PAGE_SEPARATOR
    assert as_page.candidates and as_page.n_input_tokens == len(pages.encode(PAGE, "page").ids)
    alone = Engine.load(str(SHIPPED_ADAPTER / "page"), dtype="float32", max_new_tokens=24).sweep(PAGE, kind="page")
    assert [c.prompt for c in as_page.candidates] == [c.prompt for c in alone.candidates]
    assert [c.prompt for c in real_engine.sweep(PAGE).candidates] != [c.prompt for c in as_page.candidates]
