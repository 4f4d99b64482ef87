"""The decoder and the engine on a tiny random-weight Gemma 3: properties, ranking, masking, truncation."""

from __future__ import annotations

import math

import pytest
import torch

from revprompt.core import decoding, scoring
from revprompt.core.engine import Engine, InputTruncatedWarning
from revprompt.core.prompt_format import SEPARATOR, encode_prefix, encode_prompt
from revprompt.core.types import DEFAULT_SWEEP

TEXT = "Paris is the capital of France. It is known for the Eiffel Tower, museums and cafes."


@pytest.fixture(scope="module")
def prefix(gemma_tokenizer):
    return encode_prefix(gemma_tokenizer, TEXT).ids


def test_default_sweep_is_the_24_configs():
    assert len(DEFAULT_SWEEP) == 24
    assert {c.top_k for c in DEFAULT_SWEEP} == {2, 4, 6, 15}
    assert sorted({c.penalty_alpha for c in DEFAULT_SWEEP}) == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]


def test_prefix_format(gemma_tokenizer):
    enc = encode_prefix(gemma_tokenizer, "Hello world")
    assert enc.ids[0] == gemma_tokenizer.bos_token_id
    assert gemma_tokenizer.decode(enc.ids, skip_special_tokens=True) == "Hello world" + SEPARATOR
    assert encode_prompt(gemma_tokenizer, "Say hi")[-1] == gemma_tokenizer.eos_token_id


@pytest.mark.parametrize("seed", [0, 1])
def test_top_k_one_equals_greedy(gemma_tokenizer, prefix, seed):
    from conftest import make_tiny_gemma

    model = make_tiny_gemma(seed=seed)
    stops = {gemma_tokenizer.eos_token_id}
    expected = decoding.greedy(model, prefix, 8, stops)
    for alpha in (0.3, 0.9):
        assert decoding.contrastive_search(model, prefix, 1, alpha, 8, stops) == expected


def test_penalty_alpha_zero_equals_greedy(tiny_model, gemma_tokenizer, prefix):
    stops = {gemma_tokenizer.eos_token_id}
    expected = decoding.greedy(tiny_model, prefix, 8, stops)
    assert decoding.contrastive_search(tiny_model, prefix, 6, 0.0, 8, stops) == expected


def test_penalty_changes_choices(tiny_model, gemma_tokenizer, prefix):
    """A strong degeneration penalty must steer away from greedy on a model that has real choices."""
    stops = {gemma_tokenizer.eos_token_id}
    greedy = decoding.greedy(tiny_model, prefix, 8, stops)
    assert decoding.contrastive_search(tiny_model, prefix, 15, 0.9, 8, stops) != greedy


def test_scoring_matches_full_forward(tiny_model, gemma_tokenizer, prefix):
    """Perplexity from the cached, batched scorer equals a plain full-sequence forward."""
    conts = [encode_prompt(gemma_tokenizer, p) for p in ("What is Paris?", "Tell me about France and its capital")]
    scores = scoring.score_continuations(tiny_model, prefix, conts)
    for cont, score in zip(conts, scores):
        ids = torch.tensor([prefix + cont])
        with torch.no_grad():
            logprobs = torch.log_softmax(tiny_model(input_ids=ids).logits[0].float(), dim=-1)
        lps = [float(logprobs[len(prefix) - 1 + i, t]) for i, t in enumerate(cont)]
        expected = math.exp(-sum(lps) / len(lps))
        assert score.perplexity == pytest.approx(expected, rel=1e-4)
        assert len(score.token_probs) == len(cont)


def test_ranking_is_by_perplexity_and_deduplicated(gemma_tokenizer, tiny_model):
    engine = Engine(tiny_model, gemma_tokenizer, max_new_tokens=6, top_n=10)
    result = engine.sweep(TEXT)
    ppl = [c.perplexity for c in result.candidates]
    assert ppl == sorted(ppl)
    assert [c.rank for c in result.candidates] == list(range(1, len(ppl) + 1))
    assert len({tuple(c.token_ids) for c in result.candidates}) == len(result.candidates)
    assert 1 <= len(result.candidates) <= 10
    configs = [cfg for c in result.candidates for cfg in c.configs if not cfg.beams]
    assert len(configs) == len(set(configs))  # a contrastive config produced one sequence only (a beam search more)
    for c in result.candidates:
        assert c.token_ids[-1] == gemma_tokenizer.eos_token_id
        assert len(c.tokens) == len(c.token_probs) == len(c.token_ids)
        assert all(0 < p <= 1 for p in c.token_probs)
        assert math.exp(-sum(math.log(p) for p in c.token_probs) / len(c.token_probs)) == pytest.approx(
            c.perplexity, rel=1e-5
        )


def test_top_n_limits_candidates(gemma_tokenizer, tiny_model):
    engine = Engine(tiny_model, gemma_tokenizer, max_new_tokens=6, top_n=2)
    assert len(engine.sweep(TEXT).candidates) <= 2


def test_long_input_is_truncated_with_warning(gemma_tokenizer, tiny_model):
    engine = Engine(tiny_model, gemma_tokenizer, configs=DEFAULT_SWEEP[:2], max_new_tokens=4, max_input_tokens=32)
    with pytest.warns(InputTruncatedWarning):
        result = engine.sweep(TEXT * 20)
    assert result.truncated
    assert result.n_input_tokens <= 32 + 8  # bos + response cap + separator


def test_engine_score(gemma_tokenizer, tiny_model):
    engine = Engine(tiny_model, gemma_tokenizer)
    out = engine.score(TEXT, ["What is the capital of France?", "Write a poem"])
    assert len(out) == 2 and all(math.isfinite(c.perplexity) and c.perplexity > 0 for c in out)
    assert out[0].prompt == "What is the capital of France?"
