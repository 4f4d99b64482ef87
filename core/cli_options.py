"""What the commands share, defined once: `--db` (every command that opens a results or datagen database),
`--dtype`/`--device` (every command that runs the model), and `load_engine`, the one way a command (or the
library's `revprompt.analyze`) builds an engine. Nothing here imports torch: the engine is imported when loaded."""

from __future__ import annotations

import click

from .hardware import DEVICES, DTYPES
from .store import DEFAULT_DB
from .types import DEFAULT_BEAMS, DEFAULT_MAX_NEW_TOKENS, DEFAULT_TOP_N, sweep_configs


def db_option(read_only: bool = False, help_text: str | None = None):
    """--db FILE: the DuckDB file, ./revprompt.duckdb unless REVPROMPT_DB says otherwise, for every command."""
    text = help_text or "DuckDB results file" + (" (opened read-only)." if read_only else ".")
    return click.option("--db", default=DEFAULT_DB, show_default=True, envvar="REVPROMPT_DB", help=text)


def load_engine(
    model: str | None = None,
    *,
    dtype: str = "auto",
    device: str = "auto",
    top_n: int = DEFAULT_TOP_N,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    max_input_tokens: int | None = None,
    beams: int = DEFAULT_BEAMS,
    **options,
):
    """`Engine.load` with every setting spelled out, so each caller (analyze, serve, eval, consistency, the TUI's
    paste, `revprompt.analyze`) gets the same defaults: the packaged model, `auto` dtype and device, 10 candidates
    of at most 48 tokens, inputs read up to the model's trained window. `options` go to the Engine itself
    (method, batch_docs, demote_page_junk, ...)."""
    from .engine import Engine

    return Engine.load(
        model,
        dtype=dtype,
        device=device,
        top_n=top_n,
        max_new_tokens=max_new_tokens,
        max_input_tokens=max_input_tokens,
        configs=sweep_configs(beams),
        **options,
    )


def rerank_option(command):
    """--rerank: perplexity (the default, the original method's rule) or channel (core/channel.py)."""
    return click.option(
        "--rerank",
        type=click.Choice(["perplexity", "channel"]),
        default="perplexity",
        show_default=True,
        envvar="REVPROMPT_RERANK",
        help="How candidates are ordered. channel: the 5 best by perplexity re-ordered by how well each "
        "predicts the text's opening under the base model (loads it too: about 1 GB more memory and about 3 s "
        "more a text on a 2-core AVX2 CPU). On dev600: top-1 cosine 0.745 and token-set F1 0.460, against 0.734 / 0.451 "
        "(docs/model.md §14).",
    )(command)


def beams_option(command):
    """--beams: the width of the beam search beside the 24 contrastive configurations (0: those alone)."""
    return click.option(
        "--beams",
        type=click.IntRange(0, 16),
        default=DEFAULT_BEAMS,
        show_default=True,
        envvar="REVPROMPT_BEAMS",
        help="Width of the beam search that writes candidates for assistants' responses beside the 24 "
        "contrastive-search configurations; 0 for those alone (the original method). Web pages never get it. On "
        "dev600 the beams lift top-1 cosine / token-set F1 from 0.732 / 0.449 to 0.744 / 0.465 (docs/model.md §26).",
    )(command)


def hardware_options(command):
    """--dtype and --device, both `auto` by default: bf16 where the CPU (or GPU) computes it natively, the GPU
    when there is one. The environment variables let a script pin them once."""
    command = click.option(
        "--device",
        type=click.Choice(DEVICES),
        default="auto",
        show_default=True,
        envvar="REVPROMPT_DEVICE",
        help="Where the model runs: auto is a CUDA GPU when present, else the CPU.",
    )(command)
    command = click.option(
        "--dtype",
        type=click.Choice(DTYPES),
        default="auto",
        show_default=True,
        envvar="REVPROMPT_DTYPE",
        help="Weights' precision: auto is bfloat16 where the hardware computes it natively (AVX512-BF16/AMX "
        "CPUs, most GPUs), float32 elsewhere (bf16 is emulated and slow on AVX2-only CPUs), with fp16 copies of the "
        "weights for batches on AVX2-only CPUs. float32 keeps every step exact.",
    )(command)
    return command
