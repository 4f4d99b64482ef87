"""The fast sweep must return exactly what the plain per-configuration decoder returns."""

from __future__ import annotations

import pytest

from revprompt.core.engine import Engine
from revprompt.core.types import DEFAULT_SWEEP, DecodeConfig

TEXTS = [
    "Paris is the capital of France. It is known for the Eiffel Tower, museums and cafes.",
    "To bake sourdough bread you need flour, water, salt and an active starter. Mix, fold, proof, bake.",
    "Python lists are mutable sequences; tuples are immutable. Use a list when the items change.",
]


def _same(a, b):
    assert [c.token_ids for c in a.candidates] == [c.token_ids for c in b.candidates]
    for x, y in zip(a.candidates, b.candidates):
        assert x.perplexity == pytest.approx(y.perplexity, rel=1e-4)
        assert x.configs == y.configs
        assert x.token_probs == pytest.approx(y.token_probs, rel=1e-4, abs=1e-7)


@pytest.mark.parametrize("text", TEXTS)
def test_fast_equals_reference_full_sweep(gemma_tokenizer, tiny_model, text):
    ref = Engine(tiny_model, gemma_tokenizer, max_new_tokens=6, method="reference")
    fast = Engine(tiny_model, gemma_tokenizer, max_new_tokens=6, method="fast")
    _same(ref.sweep(text), fast.sweep(text))


def test_fast_equals_reference_across_sliding_window(gemma_tokenizer):
    """With a window shorter than the input, the tree masks must reproduce sliding-window attention."""
    from conftest import make_tiny_gemma

    model = make_tiny_gemma(seed=3, sliding_window=8)
    configs = [DecodeConfig(2, 0.1), DecodeConfig(6, 0.5), DecodeConfig(15, 0.6), DecodeConfig(4, 0.3)]
    ref = Engine(model, gemma_tokenizer, configs=configs, max_new_tokens=8, method="reference")
    fast = Engine(model, gemma_tokenizer, configs=configs, max_new_tokens=8, method="fast")
    _same(ref.sweep(TEXTS[0]), fast.sweep(TEXTS[0]))


def test_fast_sweep_stops_at_stop_tokens(gemma_tokenizer, tiny_model):
    """Sequences end at a stop token and are not extended; ones that never stop run to the length cap."""
    from revprompt.core import decoding
    from revprompt.core.prompt_format import encode_prefix

    prefix = encode_prefix(gemma_tokenizer, TEXTS[1]).ids
    greedy = decoding.greedy(tiny_model, prefix, 3, set())
    stop = greedy[1]  # greedy-like configs will pick it at step 2 and must stop there
    configs = DEFAULT_SWEEP[:6]
    ref = Engine(tiny_model, gemma_tokenizer, configs=configs, max_new_tokens=6, method="reference")
    fast = Engine(tiny_model, gemma_tokenizer, configs=configs, max_new_tokens=6, method="fast")
    for engine in (ref, fast):
        engine.stop_ids = engine.stop_ids | {stop}
    a, b = ref.sweep(TEXTS[1]), fast.sweep(TEXTS[1])
    _same(a, b)
    lengths = {len(c.token_ids) for c in b.candidates}
    assert min(lengths) < 7  # some stopped early (the stop token scored as EOS) ...
    assert all(c.token_ids[-1] == gemma_tokenizer.eos_token_id for c in b.candidates)


def test_sweep_many_equals_one_at_a_time(gemma_tokenizer, tiny_model):
    """Documents decoded together (a forest in one forward) get exactly what each gets alone."""
    from conftest import make_tiny_gemma

    for model in (tiny_model, make_tiny_gemma(seed=4, sliding_window=8)):
        engine = Engine(model, gemma_tokenizer, max_new_tokens=6, batch_docs=3)
        texts = TEXTS + [TEXTS[0][:30]]  # different lengths; a second batch of one
        together = dict(engine.sweep_many(texts))
        assert sorted(together) == list(range(len(texts)))
        for i, text in enumerate(texts):
            _same(engine.sweep(text), together[i])


def test_skipped_candidates_could_never_win():
    """The bound behind candidate skipping: whatever the degeneration values in [-1, 1], every config's
    pick among all its top_k candidates is among the ones `_needed` keeps (and it is the same pick)."""
    import torch

    from revprompt.core.sweep import _needed

    gen = torch.Generator().manual_seed(0)
    skipped = 0
    for trial in range(300):
        temperature = [0.2, 1.0, 3.0][trial % 3]  # confident to flat distributions
        probs = torch.softmax(torch.randn(40, generator=gen) / temperature, dim=0).sort(descending=True).values[:15]
        configs = [DecodeConfig(k, a) for k in (2, 4, 6, 15) for a in (0.0, 0.1, 0.2, 0.3, 0.6)]
        configs = [configs[i] for i in torch.randperm(len(configs), generator=gen)[:4].tolist()]
        kept = set(_needed(probs, configs).tolist())
        skipped += 15 - len(kept)
        for _ in range(10):
            degeneration = torch.rand(15, generator=gen) * 2 - 1
            degeneration[torch.randint(0, 15, (3,), generator=gen)] = torch.tensor([-1.0, 1.0, -1.0])
            for c in configs:
                scores = (1 - c.penalty_alpha) * probs[: c.top_k] - c.penalty_alpha * degeneration[: c.top_k]
                assert int(scores.argmax()) in kept
    assert skipped > 300  # the bound does prune on confident steps, or this test proves nothing


def test_fast_equals_reference_when_candidates_are_skipped(gemma_tokenizer, monkeypatch):
    """On a confident model the fast sweep skips many candidate forwards and still matches the reference."""
    import torch
    from conftest import make_tiny_gemma

    from revprompt.core import sweep

    model = make_tiny_gemma(seed=6)
    with torch.no_grad():
        model.lm_head.weight.mul_(2.0)  # sharp next-token distributions, like a trained model's
    rows = []
    hook = model.model.register_forward_pre_hook(
        lambda module, args, kwargs: rows.append(kwargs["input_ids"].shape[1]), with_kwargs=True
    )
    # Small penalties (where the bound prunes) next to a large one (where it must keep every candidate).
    configs = [DecodeConfig(k, a) for k in (2, 6, 15) for a in (0.1, 0.2)] + [DecodeConfig(6, 0.6)]
    ref = Engine(model, gemma_tokenizer, configs=configs, max_new_tokens=8, method="reference")
    fast = Engine(model, gemma_tokenizer, configs=configs, max_new_tokens=8, method="fast")
    for text in TEXTS[:2]:
        expected = ref.sweep(text)
        rows.clear()
        got = fast.sweep(text)
        pruned_rows = sum(rows)
        _same(expected, got)
        with monkeypatch.context() as m:
            m.setattr(sweep, "_needed", lambda probs, configs: torch.arange(probs.shape[0]))
            rows.clear()
            _same(expected, fast.sweep(text))
            all_rows = sum(rows)
        assert pruned_rows < all_rows
        assert len(got.candidates) > 1
    hook.remove()


def test_batch_forests_side_by_side_equal_one_forest(gemma_tokenizer, tiny_model):
    """A CPU batch split into worker forests (each on its share of the threads) gets what one forest gets, and
    the process's thread count is back as it was afterwards."""
    import torch
    from conftest import make_tiny_own_gemma

    texts = TEXTS + [TEXTS[2][:40], TEXTS[1][:50]]
    for model in (make_tiny_own_gemma(), make_tiny_own_gemma(seed=4, sliding_window=8)):
        one = Engine(model, gemma_tokenizer, max_new_tokens=6, batch_docs=5, workers=1)
        two = Engine(model, gemma_tokenizer, max_new_tokens=6, batch_docs=5, workers=2)
        assert (one.workers, two.workers) == (1, 2)
        before = torch.get_num_threads()
        torch.set_num_threads(2)
        try:
            a, b = dict(one.sweep_many(texts)), dict(two.sweep_many(texts))
            assert torch.get_num_threads() == 2
        finally:
            torch.set_num_threads(before)
        assert sorted(b) == list(range(len(texts)))
        for i in range(len(texts)):
            _same(a[i], b[i])
            _same(two.sweep(texts[i]), b[i])
    # transformers' models switch attention through their shared config: they run one forest
    assert Engine(tiny_model, gemma_tokenizer, workers=2).workers == 1


def test_a_failing_forest_raises_and_restores_threads(gemma_tokenizer, tiny_model, monkeypatch):
    import torch

    from revprompt.core import sweep

    def broken(*args, **kwargs):
        raise RuntimeError("forest failed")

    from conftest import make_tiny_own_gemma

    monkeypatch.setattr(sweep, "fast_sweep_many", broken)
    engine = Engine(make_tiny_own_gemma(), gemma_tokenizer, max_new_tokens=4, batch_docs=4, workers=2)
    assert engine.workers == 2
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="forest failed"):
        dict(engine.sweep_many(TEXTS))
    assert torch.get_num_threads() == before


def test_half_weight_batches_equal_a_model_with_fp16_rounded_weights(gemma_tokenizer):
    """`half_weights`: a batch's forests run on fbgemm's fp16 weights, which is the fp32 sweep of the same
    model with its linear weights rounded to fp16; a single text stays on the exact fp32 weights."""
    import torch
    from conftest import make_tiny_own_gemma

    from revprompt.core import cpu_linear

    if not cpu_linear.half_available():
        pytest.skip("no fbgemm fp16 linear (or no AVX2/F16C) on this CPU")
    model, rounded = make_tiny_own_gemma(seed=5), make_tiny_own_gemma(seed=5)
    for module in rounded.modules():
        if isinstance(module, torch.nn.Linear):  # a new parameter: the LM head's rounding must not reach the embedding
            module.weight = torch.nn.Parameter(module.weight.detach().half().float(), requires_grad=False)
    half = Engine(model, gemma_tokenizer, max_new_tokens=6, batch_docs=3, workers=2, half_weights=True)
    exact = Engine(model, gemma_tokenizer, max_new_tokens=6, batch_docs=3, workers=2)
    reference = Engine(rounded, gemma_tokenizer, max_new_tokens=6, batch_docs=3, workers=1)
    assert half.describe()["batch_weights"] == "float16" and exact.describe()["batch_weights"] == "float32"
    got, want = dict(half.sweep_many(TEXTS)), dict(reference.sweep_many(TEXTS))
    fp32 = dict(exact.sweep_many(TEXTS))
    for i in range(len(TEXTS)):
        _same(got[i], want[i])
    # and that is not what fp32 weights give: the fp16 path did run
    assert any(
        abs(x.perplexity - y.perplexity) > 1e-6 * y.perplexity
        for i in range(len(TEXTS))
        for x, y in zip(got[i].candidates, fp32[i].candidates)
    )
    _same(half.sweep(TEXTS[0]), exact.sweep(TEXTS[0]))  # one text: fp32 weights


def test_beam_search_in_the_forest_equals_the_reference(gemma_tokenizer):
    """Beam hypotheses, alone and beside contrastive configs, equal the plain beam search's: the same token
    sequences, scores and configs, whether beams finish at a stop token, run to the cap or stop at 2x width."""
    from conftest import make_tiny_gemma

    from revprompt.core import decoding
    from revprompt.core.prompt_format import encode_prefix
    from revprompt.core.types import DEFAULT_BEAM

    model = make_tiny_gemma(seed=3, sliding_window=8)
    prefix = encode_prefix(gemma_tokenizer, TEXTS[2]).ids
    greedy = decoding.greedy(model, prefix, 4, set())
    for configs, stops in (
        ([DEFAULT_BEAM], set()),
        ([DEFAULT_BEAM], {greedy[1], greedy[3]}),
        ([*DEFAULT_SWEEP[:6], DEFAULT_BEAM, DecodeConfig(3, 0.0, beams=2)], {greedy[2]}),
    ):
        ref = Engine(model, gemma_tokenizer, configs=configs, max_new_tokens=8, method="reference", top_n=50)
        fast = Engine(model, gemma_tokenizer, configs=configs, max_new_tokens=8, method="fast", top_n=50)
        for engine in (ref, fast):
            engine.stop_ids = engine.stop_ids | stops
        a, b = ref.sweep(TEXTS[2]), fast.sweep(TEXTS[2])
        _same(a, b)
        beams = [c for c in b.candidates if any(cfg.beams for cfg in c.configs)]
        assert len(beams) >= DEFAULT_BEAM.beams
        if stops:  # some hypotheses end early at a stop token
            assert min(len(c.token_ids) for c in beams) < 9


def test_beam_of_width_one_is_greedy(gemma_tokenizer, tiny_model):
    """One beam reading two tokens is greedy decoding: its first hypothesis is greedy's sequence."""
    from revprompt.core import decoding
    from revprompt.core.prompt_format import encode_prefix

    prefix = encode_prefix(gemma_tokenizer, TEXTS[0]).ids
    plain = decoding.greedy(tiny_model, prefix, 4, set())
    stop = plain[2]
    assert stop not in plain[:2]  # so greedy stops at its third token, not before
    greedy = decoding.greedy(tiny_model, prefix, 6, {stop})
    assert greedy == plain[:3]
    hypotheses = decoding.beam_search(tiny_model, prefix, 1, 2, 6, {stop}, gemma_tokenizer.eos_token_id)
    assert hypotheses[0] == greedy
    assert len(hypotheses) <= 2


def test_beam_step_walks_expansions_best_first():
    """The shared step: best summed log-probability first; a stop token finishes its beam (scored with EOS
    when it is not EOS) unless the beam is empty; the first `width` others go on."""
    from revprompt.core.decoding import beam_step

    beams = [([5], [-0.5]), ([6], [-1.0])]
    tops = [([7, 2, 8], [-0.1, -0.3, -2.0], -0.3), ([9, 3], [-0.05, -0.2], -4.0)]
    chosen, finished = beam_step(beams, tops, 2, stop_ids={2, 3}, eos_id=2)
    # expansions: [5,7] -0.6, [5,2] -0.8 (stop, EOS), [6,9] -1.05, [6,3] -1.2 (stop, not EOS), [5,8] -2.5
    assert chosen == [(0, 7, -0.1), (1, 9, -0.05)]
    assert finished == [([5, 2], [-0.5, -0.3])]
    chosen, finished = beam_step(beams, tops, 3, stop_ids={2, 3}, eos_id=2)
    assert [c[:2] for c in chosen] == [(0, 7), (1, 9), (0, 8)]
    assert finished == [([5, 2], [-0.5, -0.3]), ([6, 3], [-1.0, -4.0])]
    chosen, finished = beam_step([([], [])], [([2, 4], [-0.1, -0.2], -0.1)], 1, stop_ids={2}, eos_id=2)
    assert chosen == [(0, 4, -0.2)] and finished == []
