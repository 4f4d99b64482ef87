"""A training bundle for a borrowed GPU machine (training/remote.py): packed here from a GGUF and its
dequantized base, rebuilt there exactly (on the kept vocabulary), trained with the same loop."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tiny_gemma

from revprompt.training import remote


def _gguf_name(hf_name: str) -> str:
    if hf_name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf_name == "model.norm.weight":
        return "output_norm.weight"
    inverse = {v: k for k, v in remote.GGUF_TO_HF.items()}
    _, _, layer, *part, _ = hf_name.split(".")
    return f"blk.{layer}.{inverse['.'.join(part)]}.weight"


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory, gemma_tokenizer):
    """A tiny Gemma 3 written as a Q8_0 GGUF, and the base dir that GGUF dequantizes to (as core.model makes)."""
    import gguf

    root = tmp_path_factory.mktemp("tiny-base")
    model = make_tiny_gemma(seed=3)
    model.config.tie_word_embeddings = True
    model.tie_weights()
    writer = gguf.GGUFWriter(str(root / "tiny.gguf"), "gemma3")
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name == "lm_head.weight":
                continue
            values = tensor.float().numpy()
            if values.ndim == 2:
                raw = gguf.quants.quantize(values, gguf.GGMLQuantizationType.Q8_0)
                writer.add_tensor(_gguf_name(name), raw, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
                deq = gguf.quants.dequantize(raw, gguf.GGMLQuantizationType.Q8_0).reshape(values.shape)
                tensor.copy_(torch.from_numpy(deq))  # the base is what the GGUF dequantizes to
            else:
                writer.add_tensor(_gguf_name(name), values.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    base = root / "base"
    model.save_pretrained(base)
    gemma_tokenizer.save_pretrained(base)
    return model, base, root / "tiny.gguf"


def _pairs(path, n, offset=0):
    topics = ["sourdough bread", "tomato plants", "bicycle brakes", "tax returns", "wedding toasts", "SQL joins"]
    with path.open("w") as f:
        for i in range(offset, offset + n):
            topic = topics[i % len(topics)]
            f.write(json.dumps({"prompt": f"How do I start with {topic}? ({i})", "response": f"{topic} " * 9}) + "\n")
    return str(path)


def test_a_bundle_rebuilds_the_base_exactly_on_the_kept_vocabulary(tiny_base, tmp_path):
    model, base, gguf_path = tiny_base
    train, dev = _pairs(tmp_path / "train.jsonl", 24), _pairs(tmp_path / "dev.jsonl", 4, offset=100)
    manifest = remote.pack([train], tmp_path / "bundle", [dev], base=base, gguf_path=gguf_path, part_mb=1)

    keep = np.load(tmp_path / "bundle" / "keep.npy")
    assert list(keep[:4]) == [0, 1, 2, 3]  # pad, eos, bos, unk keep their ids
    assert manifest["vocab_kept"] == len(keep) < 2000 and manifest["train"]["examples"] == 24
    assert sorted(p.name for p in tmp_path.glob("bundle.part*"))  # parts for size-limited uploads
    rebuilt, examples, held_out, _ = remote.load_bundle(tmp_path / "bundle")
    assert rebuilt.config.vocab_size == len(keep) and len(examples) == 24 and len(held_out) == 4

    # The same response and prompt, in kept ids there and full ids here: the same logits over the kept tokens.
    ex = held_out[0]
    with torch.no_grad():
        here = model(input_ids=torch.tensor([keep[ex.input_ids].tolist()])).logits[0][:, torch.from_numpy(keep)]
        there = rebuilt(input_ids=torch.tensor([ex.input_ids])).logits[0]
    assert torch.equal(here, there)
    # Labels: the loss is on the prompt only, as train.tokenize_pairs makes them.
    prefix = sum(1 for x in ex.labels if x == -100)
    assert 0 < prefix < len(ex.labels) and ex.labels[prefix:] == ex.input_ids[prefix:]


def test_training_a_bundle_continues_an_adapter_and_counts_pairs(tiny_base, tmp_path):
    from peft import LoraConfig, get_peft_model

    model, base, gguf_path = tiny_base
    train, dev = _pairs(tmp_path / "train.jsonl", 16), _pairs(tmp_path / "dev.jsonl", 4, offset=100)
    remote.pack([train], tmp_path / "bundle", [dev], base=base, gguf_path=gguf_path)
    # An earlier segment's adapter, its config carrying a field this PEFT does not know (a newer PEFT's).
    earlier = tmp_path / "earlier"
    lora = LoraConfig(r=24, lora_alpha=48, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    get_peft_model(make_tiny_gemma(seed=3), lora).save_pretrained(earlier)
    config = json.loads((earlier / "adapter_config.json").read_text())
    (earlier / "adapter_config.json").write_text(json.dumps({**config, "from_a_newer_peft": 1}))
    (earlier / "revprompt.json").write_text(json.dumps({"examples_seen_total": 1000}))

    record = remote.train_bundle(
        tmp_path / "bundle",
        tmp_path / "run",
        earlier,
        batch_size=4,
        grad_accum=1,
        max_steps=3,
        warmup_steps=1,
        progress=False,
    )
    assert record["steps"] == 3 and record["examples_seen"] == 12 and record["examples_seen_total"] == 1012
    assert [step for step, _ in record["held_out_losses"]] == [0, 3]
    assert all(np.isfinite(loss) for _, loss in record["held_out_losses"])
    assert record["lr_last"] < record["config"]["lr"]  # the segment ends on a decayed learning rate
    adapter = tmp_path / "run" / "adapter"
    assert json.loads((adapter / "revprompt.json").read_text())["examples_seen_total"] == 1012
    assert LoraConfig.from_pretrained(str(adapter)).r == 24  # larger than the default rank: kept as it was
    assert record["config"]["init_adapter"] == str(earlier)  # the adapter named, not its portable copy


def test_train_command_passes_the_schedule_options_through(tiny_base, tmp_path, capsys):
    """Every option `train` takes reaches the loop: the decay fraction sets where the last step's rate lands
    (10 steps: 0 decays only the last step, the default 0.2 the last two, 1 all ten). Session 15's GPU runs
    were given --decay-fraction before it was passed on, and ran on the default."""
    _, base, gguf_path = tiny_base
    train, dev = _pairs(tmp_path / "train.jsonl", 16), _pairs(tmp_path / "dev.jsonl", 4, offset=100)
    remote.pack([train], tmp_path / "bundle", [dev], base=base, gguf_path=gguf_path)
    common = ["--batch-size", "4", "--grad-accum", "1", "--max-steps", "10", "--warmup-steps", "1", "--lr", "1e-3"]
    last = {}
    for fraction in ("0", None, "1"):
        out = tmp_path / f"run{fraction}"
        extra = ["--decay-fraction", fraction] if fraction else []
        remote.main(["train", str(tmp_path / "bundle"), "-o", str(out), *common, *extra])
        record = json.loads((out / "training_record.json").read_text())
        assert record["steps"] == 10
        last[fraction] = record["lr_last"]
    capsys.readouterr()
    assert last["0"] == pytest.approx(1e-3 / 2)  # (10 - 9) / (1 + 1)
    assert last[None] == pytest.approx(1e-3 / 3)  # (10 - 9) / (2 + 1)
    assert last["1"] == pytest.approx(1e-3 / 11)  # (10 - 9) / (10 + 1)


def test_a_stream_bundle_trains_on_another_bundles_weights(tiny_base, tmp_path):
    """pack_stream writes only the stream, on the vocabulary of a bundle packed before; trained with --like
    that bundle, it reads its pairs and everything else from there. Pairs with a token the first bundle
    dropped are refused, before anything is written."""
    from revprompt.core.errors import UserError

    _, base, gguf_path = tiny_base
    train, dev = _pairs(tmp_path / "train.jsonl", 16), _pairs(tmp_path / "dev.jsonl", 4, offset=100)
    remote.pack([train], tmp_path / "bundle", [dev], base=base, gguf_path=gguf_path)
    subset = tmp_path / "subset.jsonl"
    subset.write_text("".join(Path(train).read_text().splitlines(keepends=True)[:6]))
    manifest = remote.pack_stream([str(subset)], tmp_path / "stream", tmp_path / "bundle", seed=5, base=base)
    assert sorted(p.name for p in (tmp_path / "stream").iterdir()) == ["manifest.json", "train.npz"]
    assert manifest["train"]["examples"] == 6 and manifest["seed"] == 5

    _, examples, held_out, _ = remote.load_bundle(tmp_path / "stream", like=tmp_path / "bundle")
    _, whole, whole_held_out, _ = remote.load_bundle(tmp_path / "bundle")
    assert len(examples) == 6 and len(held_out) == len(whole_held_out) == 4
    assert {tuple(e.input_ids) for e in examples} <= {tuple(e.input_ids) for e in whole}  # same ids, same vocabulary
    record = remote.train_bundle(
        tmp_path / "stream", tmp_path / "run", None, like=tmp_path / "bundle", batch_size=2, grad_accum=1,
        max_steps=2, warmup_steps=1, progress=False,
    )  # fmt: skip
    assert record["examples_available"] == 6 and record["steps"] == 2

    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text(json.dumps({"prompt": "Qu'est-ce que 東京 ?", "response": "東京は日本の首都です。" * 3}) + "\n")
    with pytest.raises(UserError, match="not in the vocabulary"):
        remote.pack_stream([str(foreign)], tmp_path / "stream2", tmp_path / "bundle", base=base)
    assert not (tmp_path / "stream2").exists()


def test_pack_bundle_command_explains_a_missing_file_and_packs_a_real_one(tiny_base, tmp_path, monkeypatch, capsys):
    from conftest import cli_runner

    model, base, gguf_path = tiny_base
    run = cli_runner(monkeypatch, capsys, lambda: None)
    code, _, err = run("pack-bundle", tmp_path / "missing.jsonl", "-o", tmp_path / "b", "--held-out", "x.jsonl")
    assert code == 1 and "no such file" in err and not (tmp_path / "b").exists()

    # The command packs the packaged base; here it is pointed at the tiny one.
    real_pack = remote.pack
    monkeypatch.setattr(remote, "pack", lambda *a, **k: real_pack(*a, **k, base=base, gguf_path=gguf_path))
    train, dev = _pairs(tmp_path / "train.jsonl", 8), _pairs(tmp_path / "dev.jsonl", 2, offset=50)
    code, out, _ = run("pack-bundle", train, "-o", tmp_path / "b", "--held-out", dev, "--seed", "3")
    assert code == 0 and json.loads(out)["train"]["examples"] == 8 and json.loads(out)["seed"] == 3
    assert (tmp_path / "b" / "weights.bin").stat().st_size > 0


def test_the_whole_base_goes_up_in_parts_and_comes_back_bit_for_bit(tiny_base, tmp_path):
    """pack-base cuts the GGUF into parts and keeps what it lacks; build-base rebuilds the base dir from them
    alone (the base and GGUF out of reach), tensor for tensor and byte for byte in the tokenizer."""
    from safetensors.torch import load_file

    _, base, gguf_path = tiny_base
    written = remote.pack_base(tmp_path / "packed", part_mb=1, base=base, gguf_path=gguf_path)
    parts = [p for p in written if p.name.startswith("gguf.part")]
    assert len(parts) >= 2 and sum(p.stat().st_size for p in parts) == gguf_path.stat().st_size
    target = remote.build_base(tmp_path / "packed", tmp_path / "cache" / "gemma-3-270m-base")
    want, got = load_file(str(base / "model.safetensors")), load_file(str(target / "model.safetensors"))
    assert sorted(got) == sorted(want)
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert (target / "tokenizer.json").read_bytes() == (base / "tokenizer.json").read_bytes()
    assert json.loads((target / "config.json").read_text()) == json.loads((base / "config.json").read_text())
    assert not (tmp_path / "packed" / "model.gguf").exists()  # the joined copy is not left behind


def test_build_base_refuses_a_gguf_of_another_model(tiny_base, tmp_path):
    _, base, gguf_path = tiny_base
    remote.pack_base(tmp_path / "packed", base=base, gguf_path=gguf_path)
    keys = tmp_path / "packed" / "meta" / "keys.json"
    keys.write_text(json.dumps(json.loads(keys.read_text()) + ["model.layers.99.mlp.up_proj.weight"]))
    with pytest.raises(RuntimeError, match="does not fit the base"):
        remote.build_base(tmp_path / "packed", tmp_path / "target")
    assert not (tmp_path / "target").exists()


def test_a_bundle_with_page_pairs_trains_an_adapter_that_reads_pages_so(tiny_base, tmp_path):
    from revprompt.core.prompt_format import PAGE_SEPARATOR

    model, base, gguf_path = tiny_base
    chat, dev = _pairs(tmp_path / "chat.jsonl", 6), _pairs(tmp_path / "dev.jsonl", 2, offset=100)
    remote.pack([chat], tmp_path / "chat-bundle", [dev], base=base, gguf_path=gguf_path)
    assert json.loads((tmp_path / "chat-bundle" / "manifest.json").read_text())["page_separator"] is None
    pages = tmp_path / "pages.jsonl"
    pages.write_text(
        "".join(
            json.dumps({"prompt": f"Explain {t}.", "response": f"{t} " * 9, "kind": "page"}) + "\n"
            for t in ("bread", "brakes")
        )
    )
    remote.pack([chat, str(pages)], tmp_path / "bundle", [dev], base=base, gguf_path=gguf_path)
    assert json.loads((tmp_path / "bundle" / "manifest.json").read_text())["page_separator"] == PAGE_SEPARATOR
    stream = remote.pack_stream([str(pages)], tmp_path / "stream", like=tmp_path / "bundle", base=base)
    assert stream["page_separator"] == PAGE_SEPARATOR

    remote.train_bundle(
        tmp_path / "bundle", tmp_path / "run", None, batch_size=4, grad_accum=1, max_steps=1, progress=False
    )
    meta = json.loads((tmp_path / "run" / "adapter" / "revprompt.json").read_text())
    assert meta["page_separator"] == PAGE_SEPARATOR
