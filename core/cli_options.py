"""Options shared by every command that runs the model (analyze, eval, tui, serve): one wording, one default."""

from __future__ import annotations

import click

from .hardware import DEVICES, DTYPES


def hardware_options(command):
    """--dtype and --device, both `auto` by default: bf16 where the CPU (or GPU) computes it natively, the GPU
    when there is one. The environment variables let a script pin them once."""
    command = click.option(
        "--device", type=click.Choice(DEVICES), default="auto", show_default=True, envvar="REVPROMPT_DEVICE",
        help="Where the model runs: auto is a CUDA GPU when present, else the CPU.")(command)
    command = click.option(
        "--dtype", type=click.Choice(DTYPES), default="auto", show_default=True, envvar="REVPROMPT_DTYPE",
        help="Weights' precision: auto is bfloat16 where the hardware computes it natively (AVX512-BF16/AMX "
             "CPUs, most GPUs), float32 elsewhere (bf16 is emulated and slow on AVX2-only CPUs).")(command)
    return command
