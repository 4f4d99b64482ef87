"""Training that accumulates: the WSD schedule, frozen lower layers, segments that continue an adapter on new
pairs, time-limited segments that still end decayed, and bf16 chosen by the CPU's flags."""

from __future__ import annotations

import json

import pytest
import torch

from revprompt.training import train as train_mod
from revprompt.training.data import Pair
from revprompt.training.train import TrainConfig, lr_at, train

PAIRS = [Pair(f"Question number {i} about fruit?", f"Answer {i}: apples and pears are fruit.") for i in range(32)]


def _cfg(tmp_path, name, **kw):
    base = dict(
        data=[],
        out_dir=str(tmp_path / name),
        batch_size=4,
        grad_accum=1,
        lr=1e-2,
        warmup_steps=2,
        save_every=1000,
        lora_r=4,
        progress=False,
        bf16=False,
    )
    return TrainConfig(**{**base, **kw})


def test_wsd_schedule_warms_up_holds_and_decays_to_near_zero():
    cfg = TrainConfig(data=[], out_dir="x", lr=1.0, warmup_steps=10, schedule="wsd", decay_fraction=0.2)
    lrs = [lr_at(s, 100, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(lr == 1.0 for lr in lrs[10:80])  # stable
    assert all(a > b for a, b in zip(lrs[80:], lrs[81:]))  # strictly decaying
    assert lrs[-1] < 0.06
    cosine = TrainConfig(data=[], out_dir="x", lr=1.0, warmup_steps=10, schedule="cosine")
    assert lr_at(99, 100, cosine) == pytest.approx(0.1, abs=1e-3)


def test_frozen_layers_get_no_lora_and_no_gradient(tmp_path, gemma_tokenizer):
    from conftest import make_tiny_gemma

    model = make_tiny_gemma(seed=3)
    n_layers = model.config.num_hidden_layers
    cfg = _cfg(tmp_path, "freeze", freeze_layers=1)
    peft_model, _ = train_mod.load_model_and_tokenizer(cfg, model, gemma_tokenizer)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all(".layers.0." not in n for n in trainable)
    assert any(f".layers.{n_layers - 1}." in n for n in trainable)
    with pytest.raises(ValueError, match="freeze_layers"):
        train_mod.load_model_and_tokenizer(
            _cfg(tmp_path, "bad", freeze_layers=n_layers), make_tiny_gemma(), gemma_tokenizer
        )


def test_a_second_segment_continues_the_adapter_on_new_pairs(tmp_path, gemma_tokenizer):
    from conftest import make_tiny_gemma

    first = train(
        _cfg(tmp_path, "seg1", max_steps=4), model=make_tiny_gemma(seed=5), tokenizer=gemma_tokenizer, pairs=PAIRS
    )
    adapter = tmp_path / "seg1" / "adapter"
    assert first["examples_seen_total"] == 16
    second = train(
        _cfg(tmp_path, "seg2", max_steps=4, skip_examples=16, init_adapter=str(adapter), lora_r=2, lora_alpha=7),
        model=make_tiny_gemma(seed=5),
        tokenizer=gemma_tokenizer,
        pairs=PAIRS,
    )
    assert second["examples_seen"] == 16 and second["examples_seen_total"] == 32
    # The record gives the adapter's own shape even when the command line asked for a smaller rank.
    assert second["config"]["lora_r"] == 4 and second["config"]["lora_alpha"] == 32
    assert json.loads((tmp_path / "seg2" / "adapter" / "revprompt.json").read_text())["examples_seen_total"] == 32
    # The second segment starts where the first ended: its first loss is below the first segment's first loss.
    assert second["first_losses"][0] < first["first_losses"][0]
    with pytest.raises(ValueError, match="no pairs left"):
        train(
            _cfg(tmp_path, "seg3", max_steps=1, skip_examples=len(PAIRS)),
            model=make_tiny_gemma(seed=5),
            tokenizer=gemma_tokenizer,
            pairs=PAIRS,
        )


def test_skipping_the_stream_gives_the_pairs_earlier_segments_did_not_see(gemma_tokenizer):
    from revprompt.training.data import tokenize_pairs

    examples = tokenize_pairs(gemma_tokenizer, PAIRS)
    cfg = TrainConfig(data=[], out_dir="x", batch_size=4, grad_accum=2)

    def rows(skip, n_batches):
        stream = train_mod._batch_stream(examples, cfg, 0, skip_batches=skip // 4)
        return [tuple(r[r != 0].tolist()) for _ in range(n_batches) for r in next(stream)["input_ids"]]

    first, second = rows(0, 4), rows(16, 4)  # segment 1 saw 16 examples; segment 2 skips them
    assert len(set(first)) == 16 and len(set(second)) == 16
    assert not set(first) & set(second)
    assert set(first) | set(second) == {tuple(e.input_ids) for e in examples}


def test_a_time_limited_segment_still_ends_on_a_decayed_rate(tmp_path, gemma_tokenizer, monkeypatch):
    from types import SimpleNamespace

    from conftest import make_tiny_gemma

    clock = iter(range(10**9))  # a fake clock: every reading is a quarter second later, whatever the machine
    monkeypatch.setattr(train_mod, "time", SimpleNamespace(perf_counter=lambda: next(clock) * 0.25))
    cfg = _cfg(tmp_path, "timed", max_steps=100_000, max_minutes=0.5, warmup_steps=3, epochs=1000)
    record = train(cfg, model=make_tiny_gemma(seed=2), tokenizer=gemma_tokenizer, pairs=PAIRS)
    assert 10 < record["steps"] < 100
    assert record["stop_reason"] == "done"
    assert record["lr_last"] < 0.2 * cfg.lr  # the plan fitted the decay into the time


def test_bf16_follows_the_cpu_flags(monkeypatch):
    cpu = torch.device("cpu")
    cfg = TrainConfig(data=[], out_dir="x")
    monkeypatch.setattr(train_mod, "cpu_has_native_bf16", lambda: True)
    assert train_mod._use_bf16(cfg, cpu) is True
    monkeypatch.setattr(train_mod, "cpu_has_native_bf16", lambda: False)
    assert train_mod._use_bf16(cfg, cpu) is False
    assert train_mod._use_bf16(TrainConfig(data=[], out_dir="x", bf16=True), cpu) is True


def test_bf16_training_keeps_lora_weights_in_fp32(tmp_path, gemma_tokenizer):
    from conftest import make_tiny_gemma

    cfg = _cfg(tmp_path, "bf16", bf16=True)
    model, _ = train_mod.load_model_and_tokenizer(cfg, make_tiny_gemma(seed=4), gemma_tokenizer, bf16_base=True)
    dtypes = {n: p.dtype for n, p in model.named_parameters()}
    assert all(d == torch.float32 for n, d in dtypes.items() if "lora_" in n)
    assert any(d == torch.bfloat16 for n, d in dtypes.items() if "lora_" not in n)


def test_a_segment_can_grow_the_adapter_and_starts_where_the_earlier_one_ended(tmp_path, gemma_tokenizer):
    """Higher rank and more layers: the grown adapter computes exactly what the earlier one did, then trains."""
    from conftest import make_tiny_gemma
    from peft import PeftModel

    train(
        _cfg(tmp_path, "small", max_steps=4, freeze_layers=1),
        model=make_tiny_gemma(seed=5),
        tokenizer=gemma_tokenizer,
        pairs=PAIRS,
    )
    adapter = str(tmp_path / "small" / "adapter")
    ids = gemma_tokenizer("Apples and pears are fruit.\n###\nWhich fruit?", return_tensors="pt").input_ids

    earlier = PeftModel.from_pretrained(make_tiny_gemma(seed=5), adapter).eval()
    plain = make_tiny_gemma(seed=5).eval()
    cfg = _cfg(tmp_path, "grown", lora_r=8, freeze_layers=0, init_adapter=adapter)
    grown, _ = train_mod.load_model_and_tokenizer(cfg, make_tiny_gemma(seed=5), gemma_tokenizer)
    grown.eval()
    with torch.no_grad():
        want, got, base = earlier(ids).logits, grown(ids).logits, plain(ids).logits
    assert not torch.allclose(want, base, atol=1e-4)  # the earlier adapter did learn something
    assert torch.allclose(got, want, atol=1e-5)
    a = next(p for n, p in grown.named_parameters() if ".layers.0." in n and "lora_A" in n)
    assert a.shape[0] == 8 and a.requires_grad  # layer 0 is newly covered, at the new rank
    assert cfg.lora_alpha / cfg.lora_r == 32 / 4  # the earlier scale alpha/r is kept

    record = train(
        _cfg(tmp_path, "grown-run", max_steps=2, lora_r=8, freeze_layers=0, init_adapter=adapter),
        model=make_tiny_gemma(seed=5),
        tokenizer=gemma_tokenizer,
        pairs=PAIRS,
    )
    saved = json.loads((tmp_path / "grown-run" / "adapter" / "adapter_config.json").read_text())
    assert saved["r"] == 8 and record["examples_seen_total"] == 16 + 8
