"""`revprompt train` and `revprompt eval`: thin commands over training.train and training.evaluate."""

from __future__ import annotations

import json

import click

from revprompt.core.hookspecs import hookimpl


@click.command("train")
@click.argument("data", nargs=-1, required=True)
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--base", "base_model", default="base", show_default=True, help="Model to fine-tune ('base', a directory, or an HF id).")
@click.option("--method", type=click.Choice(["lora", "full"]), default="lora", show_default=True)
@click.option("--max-examples", type=int, default=None, help="Use at most this many pairs (a seeded random sample).")
@click.option("--epochs", default=1, show_default=True)
@click.option("--max-steps", type=int, default=None, help="Stop after this many optimiser steps.")
@click.option("--max-minutes", type=float, default=None, help="Stop cleanly after this many minutes, saving everything.")
@click.option("--batch-size", default=4, show_default=True)
@click.option("--grad-accum", default=2, show_default=True, help="Micro-batches per optimiser step.")
@click.option("--lr", default=2e-4, show_default=True)
@click.option("--warmup-steps", default=30, show_default=True)
@click.option("--max-seq-len", default=2048, show_default=True)
@click.option("--max-response-tokens", type=int, default=None, help="Cut responses to this many tokens (CPU speed lever).")
@click.option("--lora-r", default=16, show_default=True)
@click.option("--lora-alpha", default=32, show_default=True)
@click.option("--gradient-checkpointing", is_flag=True, help="Trade compute for memory on long sequences.")
@click.option("--bf16/--no-bf16", default=None, help="bf16 autocast (default: on for CUDA GPUs with bf16).")
@click.option("--save-every", default=50, show_default=True, help="Checkpoint every N steps (a rerun resumes from it).")
@click.option("--no-resume", is_flag=True, help="Start over even if OUT holds a checkpoint.")
@click.option("--seed", default=0, show_default=True)
def train_command(data, out_dir, base_model, method, max_examples, epochs, max_steps, max_minutes, batch_size,
                  grad_accum, lr, warmup_steps, max_seq_len, max_response_tokens, lora_r, lora_alpha,
                  gradient_checkpointing, bf16, save_every, no_resume, seed):
    """Fine-tune the model on (prompt, response) pairs from DATA files.

    \b
    DATA: JSONL files with "prompt" and "response" fields; FILE@N samples N pairs from FILE;
    DB.duckdb::TABLE reads a datagen table. Each pair is trained as
    "{response}\\n###\\n{prompt}<eos>" with the loss on the prompt only.

    \b
    Examples:
      revprompt train ../shared/data/train/sharegpt_chatgpt.jsonl@2000 pairs.jsonl -o runs/my-adapter
      revprompt train pairs.jsonl -o runs/tiny --max-steps 20 --max-response-tokens 256
    Re-running the same command resumes from the last checkpoint. The adapter lands in OUT/adapter;
    use it with `revprompt analyze --model OUT/adapter`.
    """
    from .train import TrainConfig, train

    cfg = TrainConfig(
        data=list(data), out_dir=out_dir, base_model=base_model, method=method, max_examples=max_examples,
        epochs=epochs, max_steps=max_steps, max_minutes=max_minutes, batch_size=batch_size, grad_accum=grad_accum,
        lr=lr, warmup_steps=warmup_steps, max_seq_len=max_seq_len, max_response_tokens=max_response_tokens,
        lora_r=lora_r, lora_alpha=lora_alpha, gradient_checkpointing=gradient_checkpointing, bf16=bf16,
        save_every=save_every, resume=not no_resume, seed=seed,
    )
    record = train(cfg)
    click.echo(json.dumps({k: record[k] for k in ("steps", "examples_seen", "seconds", "mean_loss_first_20",
                                                 "mean_loss_last_20", "stop_reason", "output")}, indent=2))


@hookimpl
def register_commands(cli):
    cli.add_command(train_command)
    try:
        from .eval_command import eval_command
    except ModuleNotFoundError as exc:
        if exc.name != "revprompt.training.eval_command":
            raise
    else:
        cli.add_command(eval_command)
