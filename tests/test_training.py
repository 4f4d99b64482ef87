"""Training: loss masking, a tiny model learning, checkpoint resume, and datagen -> train end to end."""

from __future__ import annotations

import json

import pytest
from fixtures.datagen.helpers import fake, gemini_args, gemini_env, run_cli  # noqa: F401

from revprompt.training.data import IGNORE_INDEX, Pair, read_pairs, tokenize_pairs
from revprompt.training.train import TrainConfig, train

PAIRS = [
    Pair("What is the capital of France?", "The capital of France is Paris, on the Seine."),
    Pair("Name a red fruit", "Strawberries and apples are red fruits."),
    Pair("How many legs does a spider have?", "A spider has eight legs."),
    Pair("Translate hello into Spanish", "Hello in Spanish is hola."),
] * 4


def test_labels_cover_only_the_prompt(gemma_tokenizer):
    [ex] = tokenize_pairs(gemma_tokenizer, PAIRS[:1])
    n_prompt = sum(1 for label in ex.labels if label != IGNORE_INDEX)
    prompt_ids = gemma_tokenizer(PAIRS[0].prompt, add_special_tokens=False)["input_ids"]
    assert n_prompt == len(prompt_ids) + 1  # the prompt and EOS
    assert ex.labels[-1] == gemma_tokenizer.eos_token_id
    assert ex.input_ids[-n_prompt:] == ex.labels[-n_prompt:]
    text = gemma_tokenizer.decode(ex.input_ids, skip_special_tokens=True)
    assert text == PAIRS[0].response + "\n###\n" + PAIRS[0].prompt


def test_response_cap_keeps_prompt_whole(gemma_tokenizer):
    long_pair = Pair("Summarise this", "word " * 500)
    [ex] = tokenize_pairs(gemma_tokenizer, [long_pair], max_seq_len=64)
    assert len(ex.input_ids) == 64
    [ex2] = tokenize_pairs(gemma_tokenizer, [long_pair], max_response_tokens=10)
    assert len(ex2.input_ids) < 30 and ex2.labels[-1] == gemma_tokenizer.eos_token_id


@pytest.mark.parametrize("method", ["lora", "full"])
def test_tiny_model_loss_goes_down(tmp_path, gemma_tokenizer, method):
    from conftest import make_tiny_gemma

    cfg = TrainConfig(
        data=[],
        out_dir=str(tmp_path / method),
        method=method,
        max_steps=24,
        batch_size=4,
        grad_accum=1,
        lr=2e-2 if method == "lora" else 3e-3,
        warmup_steps=2,
        save_every=8,
        lora_r=8,
        progress=False,
    )
    record = train(cfg, model=make_tiny_gemma(seed=7), tokenizer=gemma_tokenizer, pairs=PAIRS)
    assert record["steps"] == 24
    assert record["mean_loss_last_20"] < record["first_losses"][0] * 0.8
    out = tmp_path / method / ("adapter" if method == "lora" else "model")
    assert (out / ("adapter_model.safetensors" if method == "lora" else "model.safetensors")).exists()


def test_training_resumes_from_checkpoint(tmp_path, gemma_tokenizer):
    from conftest import make_tiny_gemma

    def cfg(steps):
        return TrainConfig(
            data=[],
            out_dir=str(tmp_path),
            max_steps=steps,
            batch_size=4,
            grad_accum=1,
            lr=1e-2,
            warmup_steps=1,
            save_every=3,
            lora_r=4,
            progress=False,
        )

    first = train(cfg(6), model=make_tiny_gemma(seed=1), tokenizer=gemma_tokenizer, pairs=PAIRS)
    second = train(cfg(9), model=make_tiny_gemma(seed=1), tokenizer=gemma_tokenizer, pairs=PAIRS)
    assert first["steps"] == 6 and second["steps"] == 9
    state = json.loads((tmp_path / "checkpoint" / "state.json").read_text())
    assert len(state["losses"]) == 9 and state["losses"][:6] == first["first_losses"][:6]


def test_datagen_then_train_end_to_end(capsys, gemini_env, fake, tmp_path, tiny_model, gemma_tokenizer):  # noqa: F811
    """Issue G's acceptance: datagen prompts -> responses -> export -> train (tiny model), through the CLI."""
    db, data = tmp_path / "d.duckdb", tmp_path / "data"
    model_dir = tmp_path / "tiny"
    tiny_model.save_pretrained(model_dir)
    gemma_tokenizer.save_pretrained(model_dir)
    assert run_cli(capsys, "datagen", "prompts", *gemini_args(fake, db, "-n", "4", "--batch-size", "4"))[0] == 0
    assert run_cli(capsys, "datagen", "responses", *gemini_args(fake, db, "--yes"))[0] == 0
    code, _, err = run_cli(capsys, "datagen", "export", data, "--db", db, "--dev-fraction", "0.2")
    assert code == 0, err
    n_train = len(read_pairs([data / "train.jsonl"]))
    assert n_train >= 10
    code, out, err = run_cli(
        capsys,
        "train",
        data / "train.jsonl",
        "-o",
        tmp_path / "run",
        "--base",
        model_dir,
        "--max-steps",
        "3",
        "--batch-size",
        "2",
        "--grad-accum",
        "1",
        "--lora-r",
        "4",
        "--max-response-tokens",
        "32",
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["steps"] == 3 and summary["examples_seen"] == 6
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").exists()
    # The trained adapter loads as a model for analysis.
    from revprompt.core.engine import Engine
    from revprompt.core.model import resolve

    spec = resolve(str(tmp_path / "run" / "adapter"))
    assert (spec.path / "model.safetensors").exists()
    # Inputs are cut to the response length the adapter was trained on, unless the user says otherwise.
    assert spec.trained_response_tokens == 32
    assert Engine.load(str(tmp_path / "run" / "adapter")).max_input_tokens == 32
    assert Engine.load(str(tmp_path / "run" / "adapter"), max_input_tokens=100).max_input_tokens == 100


def test_prompt_loss_in_blocks_equals_one_cross_entropy_over_the_prompt(monkeypatch):
    """The loss is summed over small blocks of prompt positions (cache-friendly); value and gradients must be
    those of one cross-entropy over the full logits at the labelled positions."""
    import torch
    from conftest import make_tiny_gemma

    from revprompt.training import train as train_module

    model = make_tiny_gemma(seed=5, vocab_size=512)
    torch.manual_seed(0)
    ids = torch.randint(4, 512, (3, 23))
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, 9:] = ids[:, 9:]  # a 9-token "response", then the prompt
    labels[2, 20:] = IGNORE_INDEX  # a shorter row
    batch = {"input_ids": ids, "labels": labels, "attention_mask": torch.ones_like(ids)}

    logits = model(input_ids=ids, attention_mask=batch["attention_mask"]).logits[:, :-1]
    targets = labels[:, 1:]
    want = torch.nn.functional.cross_entropy(logits[targets != IGNORE_INDEX].float(), targets[targets != IGNORE_INDEX])
    want_grad = torch.autograd.grad(want, model.model.layers[0].mlp.down_proj.weight)[0]

    monkeypatch.setattr(train_module, "HEAD_ROWS", 7)  # several products, and blocks that do not divide them
    monkeypatch.setattr(train_module, "LOSS_ROWS", 3)
    got = train_module.prompt_loss(model, batch)
    got_grad = torch.autograd.grad(got, model.model.layers[0].mlp.down_proj.weight)[0]
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    assert torch.allclose(got_grad, want_grad, rtol=1e-4, atol=1e-7)
    one_block = train_module.prompt_loss(model, batch, loss_rows=0)  # the first trainer's way: the same loss
    assert one_block.item() == pytest.approx(want.item(), rel=1e-6)
