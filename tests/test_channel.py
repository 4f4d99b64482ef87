"""`--rerank channel` (core/channel.py): the score equals one sequence scored at a time, on both Gemma 3
implementations; the re-ordering follows -log ppl + weight * channel over the first few candidates only, and
never moves demoted junk; the engine and the commands carry the option."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import make_tiny_gemma

from revprompt.core import channel
from revprompt.core.engine import Engine
from revprompt.core.types import Candidate

RESPONSE = "Paris is the capital of France. It is known for the Eiffel Tower, museums and cafes along the Seine."
PROMPTS = ["What is the capital of France?", "Tell me about Paris and what a visitor can see there", "hi"]


def one_at_a_time(model, tok, prompt: str, response: str, n: int) -> float:
    head = [tok.bos_token_id] + tok(prompt.strip() + channel.SEPARATOR, add_special_tokens=False)["input_ids"]
    r = tok(response, add_special_tokens=False)["input_ids"][:n]
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([head + r]), use_cache=False).logits[0].float()
    lp = torch.log_softmax(logits, -1)
    return sum(float(lp[len(head) - 1 + i, t]) for i, t in enumerate(r)) / len(r)


@pytest.fixture(scope="module")
def base_twin():
    return make_tiny_gemma(seed=7)


@pytest.mark.parametrize("implementation", ["transformers", "own"])
def test_scores_equal_each_sequence_scored_alone(base_twin, gemma_tokenizer, implementation):
    model = base_twin
    if implementation == "own":
        from revprompt.core.gemma3 import Gemma3Config, Gemma3ForCausalLM

        config = Gemma3Config.from_dict(json.loads(base_twin.config.to_json_string()))
        model = Gemma3ForCausalLM.from_state_dict(config, {k: v.clone() for k, v in base_twin.state_dict().items()})
    got = channel.channel_scores(model, gemma_tokenizer, PROMPTS, RESPONSE, response_tokens=16)
    want = [one_at_a_time(base_twin, gemma_tokenizer, p, RESPONSE, 16) for p in PROMPTS]
    assert got == pytest.approx(want, abs=1e-4)
    assert len(set(round(g, 4) for g in got)) == len(PROMPTS)  # the prompt changes the score


def candidate(prompt: str, perplexity: float) -> Candidate:
    return Candidate(prompt, [], [], [], perplexity, math.log(perplexity))


def test_rerank_orders_the_head_by_the_combined_score_and_keeps_the_rest(base_twin, gemma_tokenizer):
    prompts = ["one thing", "Paris and France", "the Eiffel Tower", "museums", "cafes", "Seine", "tail"]
    cands = [candidate(p, 1.5 + 0.1 * i) for i, p in enumerate(prompts)]
    junk = cands[1]
    out = channel.rerank(list(cands), base_twin, gemma_tokenizer, RESPONSE, weight=2.0, top=4, keep_last={id(junk)})
    head = [c for c in cands if c is not junk][:4]
    assert [c.prompt for c in out[:4]] == [
        c.prompt for c in sorted(head, key=lambda c: math.log(c.perplexity) - 2.0 * c.channel)
    ]
    assert all(c.channel is not None for c in head)
    # Neither the demoted candidate nor those past the head are scored or moved.
    rest = [c for c in cands if c not in head]
    assert out[4:] == rest
    assert junk.channel is None and cands[-1].channel is None


def test_weight_zero_keeps_perplexity_order(base_twin, gemma_tokenizer):
    cands = [candidate(p, 1.2 + i) for i, p in enumerate(PROMPTS)]
    out = channel.rerank(list(cands), base_twin, gemma_tokenizer, RESPONSE, weight=0.0)
    assert out == cands


def test_engine_reranks_with_the_channel_model(tiny_model, base_twin, gemma_tokenizer):
    plain = Engine(tiny_model, gemma_tokenizer, max_new_tokens=12)
    ranked = Engine(tiny_model, gemma_tokenizer, max_new_tokens=12, rerank="channel", channel_model=base_twin)
    assert ranked.describe()["rerank"] == "channel" and plain.describe()["rerank"] == "perplexity"
    a, b = plain.sweep(RESPONSE), ranked.sweep(RESPONSE)
    assert sorted(c.prompt for c in a.candidates) == sorted(c.prompt for c in b.candidates)
    scored = [c for c in b.candidates if c.channel is not None]
    assert len(scored) == min(channel.DEFAULT_TOP, len(b.candidates))
    assert b.candidates[: len(scored)] == scored
    best = max(scored, key=lambda c: -math.log(c.perplexity) + channel.DEFAULT_WEIGHT * c.channel)
    assert b.candidates[0] is best and b.candidates[0].rank == 1
    assert all(c.channel is None for c in a.candidates)


def test_engine_refuses_a_bad_rerank(tiny_model, gemma_tokenizer):
    with pytest.raises(ValueError, match="rerank must be one of"):
        Engine(tiny_model, gemma_tokenizer, rerank="votes")
    with pytest.raises(ValueError, match="needs channel_model"):
        Engine(tiny_model, gemma_tokenizer, rerank="channel")


def test_run_key_changes_only_with_a_non_default_rerank():
    from revprompt.core.analyze_command import engine_description

    assert "rerank" not in engine_description()  # runs stored before the option keep their keys
    assert engine_description(rerank="channel")["rerank"] == "channel"
