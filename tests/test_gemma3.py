"""revprompt's own Gemma 3 (core/gemma3.py) against transformers': same logits, same decoding, same sweep, and an
analysis path that never imports transformers' model classes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from revprompt.core import decoding, fast_load, keyword_scoring, scoring
from revprompt.core.gemma3 import Gemma3Config, Gemma3ForCausalLM, KVCache, unsupported
from revprompt.core.hf_compat import cache_kwargs, output_cache
from revprompt.core.sweep import fast_sweep_many
from revprompt.core.types import DEFAULT_SWEEP

VOCAB = 512
ATOL = 1e-5


def tiny_hf(seed=0, tie=False, softcap=None, rope_parameters=None):
    """A random 3-layer Gemma 3 (sliding, full, sliding) with a 5-slot window, 4 query heads on 2 key/value
    heads, and every norm weight random (transformers initialises them to 0, which would hide a wrong `1 + w`)."""
    from transformers import Gemma3ForCausalLM as HFGemma3
    from transformers import Gemma3TextConfig

    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        query_pre_attn_scalar=24,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"],
        sliding_window=5,
        max_position_embeddings=1024,
        final_logit_softcapping=softcap,
        tie_word_embeddings=tie,
        rope_parameters=rope_parameters,
        bos_token_id=2,
        eos_token_id=1,
        pad_token_id=0,
    )
    model = HFGemma3(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.normal_(0, 0.3)
        model.model.embed_tokens.weight.normal_(0, 1.0)
        if not tie:
            model.lm_head.weight.normal_(0, 0.5)
    return model


def own_twin(hf) -> Gemma3ForCausalLM:
    """The own model on the transformers model's weights, read through its config as saved in config.json."""
    config = Gemma3Config.from_dict(json.loads(hf.config.to_json_string()))
    return Gemma3ForCausalLM.from_state_dict(config, {k: v.clone() for k, v in hf.state_dict().items()})


@pytest.fixture(scope="module")
def pair():
    hf = tiny_hf()
    return hf, own_twin(hf)


def ids(n, batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, VOCAB, (batch, n), generator=g)


# -- config ---------------------------------------------------------------------------------------------------
def test_config_reads_new_and_old_rope_keys_as_transformers_does():
    from transformers import Gemma3TextConfig

    old_style = {
        "model_type": "gemma3_text",
        "architectures": ["Gemma3ForCausalLM"],
        "num_hidden_layers": 7,
        "sliding_window_pattern": 3,
        "rope_theta": 500_000.0,
        "rope_local_base_freq": 20_000.0,
        "rope_scaling": {"rope_type": "linear", "factor": 8.0},
    }
    ours = Gemma3Config.from_dict(old_style)
    theirs = Gemma3TextConfig(**{k: v for k, v in old_style.items() if k not in ("model_type", "architectures")})
    assert ours.layer_types == theirs.layer_types
    assert ours.rope == {kind: (p["rope_theta"], p.get("factor", 1.0)) for kind, p in theirs.rope_parameters.items()}
    assert ours.rope["full_attention"] == (500_000.0, 8.0) and ours.rope["sliding_attention"] == (20_000.0, 1.0)


@pytest.mark.parametrize(
    "change",
    [
        {"model_type": "llama"},
        {"architectures": ["Gemma3ForSequenceClassification"]},
        {"attn_logit_softcapping": 50.0},
        {"use_bidirectional_attention": True},
        {"hidden_activation": "silu"},
        {"rope_parameters": {"full_attention": {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e6}}},
        {"layer_types": ["sliding_attention", "chunked_attention", "full_attention"]},
        {"quantization_config": {"quant_method": "bitsandbytes"}},
    ],
)
def test_configs_it_would_not_reproduce_are_refused(change):
    raw = json.loads(tiny_hf().config.to_json_string())
    assert unsupported(raw) is None
    assert unsupported({**raw, **change})
    with pytest.raises(ValueError):
        Gemma3Config.from_dict({**raw, **change})


# -- the forward ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"tie": True, "softcap": 3.0},
        {"rope_parameters": {"full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 1e6}}},
    ],
)
def test_plain_forward_equals_transformers(variant):
    hf = tiny_hf(seed=1, **variant)
    own = own_twin(hf)
    x = ids(13, batch=2)  # longer than the window: the sliding layers' mask matters
    with torch.no_grad():
        want = hf(input_ids=x, output_hidden_states=True)
        got = own(input_ids=x, output_hidden_states=True)
        body = own.model(input_ids=x)
    torch.testing.assert_close(got.logits, want.logits, atol=ATOL, rtol=1e-5)
    assert len(got.hidden_states) == len(want.hidden_states)
    for a, b in zip(got.hidden_states, want.hidden_states):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=1e-5)
    torch.testing.assert_close(body.last_hidden_state, got.hidden_states[-1])  # the final norm's output


def test_window_changes_the_result(pair):
    """The comparisons above would be vacuous if the window never cut anything off."""
    hf, own = pair
    wide = Gemma3ForCausalLM.from_state_dict(
        Gemma3Config.from_dict({**json.loads(hf.config.to_json_string()), "sliding_window": 64}),
        {k: v.clone() for k, v in hf.state_dict().items()},
    )
    x = ids(13)
    with torch.no_grad():
        assert not torch.allclose(own(input_ids=x).logits[0, -1], wide(input_ids=x).logits[0, -1], atol=1e-3)
        torch.testing.assert_close(own(input_ids=x[:, :5]).logits, wide(input_ids=x[:, :5]).logits)


def test_cached_decoding_with_positions_equals_transformers(pair):
    hf, own = pair
    x = ids(16, seed=2)
    with torch.no_grad():
        outs = []
        for model in (hf, own):
            out = model(input_ids=x[:, :7], use_cache=True)
            cache, logits = output_cache(out), [out.logits]
            # a chunk of 3 across the window's edge, then single tokens, each at its explicit position
            for start, stop in ((7, 10), (10, 11), (11, 12), (12, 13), (13, 16)):
                positions = torch.arange(start, stop)[None]
                out = model(input_ids=x[:, start:stop], position_ids=positions, **cache_kwargs(cache), use_cache=True)
                cache = output_cache(out)
                logits.append(out.logits)
            outs.append(torch.cat(logits, dim=1))
        torch.testing.assert_close(outs[1], outs[0], atol=ATOL, rtol=1e-5)
        torch.testing.assert_close(outs[1], own(input_ids=x).logits, atol=ATOL, rtol=1e-5)


def test_the_cache_takes_both_transformers_names(pair):
    _, own = pair
    x = ids(6)
    with torch.no_grad():
        first = own(input_ids=x[:, :4], past_key_values=KVCache())
        a = own(input_ids=x[:, 4:], past_key_values=first.past_key_values).logits
        b = own(input_ids=x[:, 4:], cache=own(input_ids=x[:, :4]).cache).logits
    torch.testing.assert_close(a, b)
    assert first.cache.get_seq_length() == 6  # appended in place, as transformers' DynamicCache


def test_padding_mask(pair):
    hf, own = pair
    x = ids(9, batch=2, seed=3)
    mask = torch.ones_like(x)
    mask[1, 6:] = 0  # right padding
    with torch.no_grad():
        want = hf(input_ids=x, attention_mask=mask).logits
        got = own(input_ids=x, attention_mask=mask).logits
    torch.testing.assert_close(got, want, atol=ATOL, rtol=1e-5)


# -- the decoders on either model -----------------------------------------------------------------------------
PREFIXES = [ids(11, seed=10)[0].tolist(), ids(7, seed=11)[0].tolist(), ids(15, seed=12)[0].tolist()]


def test_fast_sweep_over_several_documents_equals_transformers(pair):
    hf, own = pair
    configs = DEFAULT_SWEEP[:10]
    want = fast_sweep_many(hf, PREFIXES, configs, 6, {1}, 1)
    got = fast_sweep_many(own, PREFIXES, configs, 6, {1}, 1)
    for a, b in zip(got, want):
        assert a.sequences == b.sequences
        assert a.scores.keys() == b.scores.keys()
        for key in a.scores:
            assert a.scores[key].token_ids == b.scores[key].token_ids
            assert a.scores[key].mean_nll == pytest.approx(b.scores[key].mean_nll, rel=1e-5, abs=1e-6)


def test_reference_decoders_and_scoring_equal_transformers(pair):
    hf, own = pair
    prefix = PREFIXES[0]
    for top_k, alpha in ((2, 0.1), (5, 0.6)):
        assert decoding.contrastive_search(own, prefix, top_k, alpha, 6, {1}) == decoding.contrastive_search(
            hf, prefix, top_k, alpha, 6, {1}
        )
    assert decoding.greedy(own, prefix, 6, {1}) == decoding.greedy(hf, prefix, 6, {1})
    continuations = [[5, 6, 7, 1], [9, 1], [30, 31, 32, 33, 34, 35, 1]]
    got = scoring.score_continuations(own, prefix, continuations, batch_size=2)
    want = scoring.score_continuations(hf, prefix, continuations, batch_size=2)
    assert [s.mean_nll for s in got] == pytest.approx([s.mean_nll for s in want], rel=1e-5)
    jobs = [(p, continuations) for p in PREFIXES]
    got_pages = keyword_scoring.score_pages(own, jobs, max_rows=6)
    want_pages = keyword_scoring.score_pages(hf, jobs, max_rows=6)
    assert sum(got_pages, []) == pytest.approx(sum(want_pages, []), rel=1e-5)


# -- loading --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("gemma3") / "tiny"
    tiny_hf(seed=5, tie=True).save_pretrained(path)  # tied, like the released models: no lm_head in the file
    return path


def test_fast_load_builds_the_own_model_and_the_env_forces_transformers(saved_dir, monkeypatch):
    own = fast_load.load_model(saved_dir, "float32", "cpu")
    assert isinstance(own, Gemma3ForCausalLM)
    assert own.lm_head.weight.data_ptr() == own.model.embed_tokens.weight.data_ptr()
    monkeypatch.setenv(fast_load.HF_MODEL_ENV, "1")
    hf = fast_load.load_model(saved_dir, "float32", "cpu")
    assert not isinstance(hf, Gemma3ForCausalLM)
    x = ids(12, seed=6)
    with torch.no_grad():
        torch.testing.assert_close(own(input_ids=x).logits, hf(input_ids=x).logits, atol=ATOL, rtol=1e-5)


def test_fast_load_falls_back_to_transformers(saved_dir, tmp_path):
    """A config the own model does not reproduce, or a checkpoint whose keys it does not know, loads with
    transformers as before."""
    import shutil

    odd = tmp_path / "odd"
    shutil.copytree(saved_dir, odd)
    config = json.loads((odd / "config.json").read_text())
    (odd / "config.json").write_text(json.dumps({**config, "attn_logit_softcapping": 50.0}))
    assert not isinstance(fast_load.load_model(odd, "float32", "cpu"), Gemma3ForCausalLM)
    with pytest.raises(ValueError, match="unexpected"):
        state = {k: v.clone() for k, v in tiny_hf().state_dict().items()}
        Gemma3ForCausalLM.from_state_dict(Gemma3Config.from_dict(config), {**state, "extra.weight": torch.zeros(1)})


ANALYZE = """
import json, sys
from revprompt.core.cli import main
try:
    main(["analyze", "Bake bread at 250 C for forty minutes.", "--model", sys.argv[1], "--db", sys.argv[2]])
except SystemExit as exc:
    assert not exc.code, exc.code
from revprompt.core.gemma3 import Gemma3ForCausalLM
heavy = ["transformers.modeling_utils", "transformers.models.gemma3.modeling_gemma3", "torch._dynamo", "transformers"]
print(json.dumps({"loaded": [m for m in heavy if m in sys.modules]}))
"""


def test_analyze_never_imports_transformers_model_classes(tiny_model_dir, tmp_path):
    """The point of the own model (issue #14): `revprompt analyze` on a Gemma 3 runs without
    transformers.modeling_utils and the ~2 s it pulls in (torch._dynamo, torch.distributed.tensor, scipy), and with
    the tokenizer read by `tokenizers` alone (core/tokenizer.py) without transformers at all (~0.6 s more)."""
    proc = subprocess.run(
        [sys.executable, "-c", ANALYZE, tiny_model_dir, str(tmp_path / "a.duckdb")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"loaded": []}


# -- the real model (slow) ------------------------------------------------------------------------------------
@pytest.mark.integration
def test_real_model_logits_equal_transformers(monkeypatch):
    from revprompt.core.model import resolve

    path = resolve().path
    tokenizer = fast_load.load_tokenizer(path)
    x = torch.tensor([tokenizer("Keep a regular bedtime and avoid screens before bed.\n###\n")["input_ids"]])
    own = fast_load.load_model(path, "float32", "cpu")
    assert isinstance(own, Gemma3ForCausalLM)
    monkeypatch.setenv(fast_load.HF_MODEL_ENV, "1")
    hf = fast_load.load_model(path, "float32", "cpu")
    with torch.no_grad():
        torch.testing.assert_close(own(input_ids=x).logits, hf(input_ids=x).logits, atol=1e-4, rtol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_forward_and_sweep_equal_the_cpu():
    hf = tiny_hf(seed=7)
    own = own_twin(hf)
    x = ids(13)
    with torch.no_grad():
        want = own(input_ids=x).logits
        own.to("cuda")
        torch.testing.assert_close(own(input_ids=x.cuda()).logits.cpu(), want, atol=1e-4, rtol=1e-4)
    cpu = fast_sweep_many(hf, PREFIXES, DEFAULT_SWEEP[:6], 6, {1}, 1)
    gpu = fast_sweep_many(own, PREFIXES, DEFAULT_SWEEP[:6], 6, {1}, 1)
    assert [a.sequences for a in gpu] == [b.sequences for b in cpu]
