"""The `--ray` options of `revprompt analyze` (issue 16). Ray itself is imported only when --ray is used
(core/ray_runner.py `require_ray`): revprompt installs and runs without it."""

from __future__ import annotations

from types import SimpleNamespace

import click


def ray_options(command):
    command = click.option(
        "--output-parquet",
        default=None,
        metavar="DIR",
        help="Also write the run's rows as Parquet shards under DIR (a folder, or a URL such as s3://bucket/path) "
        "with the tables' schema, as the batch goes; query them with `revprompt sql --parquet DIR`, load them "
        "with `revprompt import DIR`.",
    )(command)
    command = click.option(
        "--ray-cpus",
        type=click.FloatRange(min=0.1),
        default=1.0,
        show_default=True,
        help="With --ray: CPUs each engine actor reserves (and the threads its model uses).",
    )(command)
    command = click.option(
        "--ray-actors",
        type=click.IntRange(min=1),
        default=None,
        help="With --ray: how many engine actors (one model load each). Default: as many as the cluster's CPUs "
        "hold at --ray-cpus each, or one per GPU on a cluster with GPUs.",
    )(command)
    command = click.option(
        "--ray",
        "ray_address",
        is_flag=False,
        flag_value="auto",
        default=None,
        metavar="[auto|ADDRESS]",
        help="Load and analyse on a Ray cluster (pip install 'revprompt[ray]'); results still land in --db. "
        "auto (the default value): RAY_ADDRESS if set, else a local Ray on 127.0.0.1; local: a new local "
        "Ray; or a cluster's address (HOST:PORT, ray://HOST:PORT). See docs/scale-out.md.",
    )(command)
    return command


def address(value: str | None, targets: list[str]) -> str | None:
    """The --ray value, or None without --ray. `--ray TARGET` (the flag before a target, whose value click
    took for an address) is read as `--ray TARGET`: the target goes back to the targets."""
    from .ray_runner import is_address, require_ray

    if value is None:
        return None
    require_ray()  # before anything is opened: no Ray, one line
    if not is_address(value):
        targets.insert(0, value)
        return "auto"
    return value


def runner(
    store,
    description: dict,
    analyzers: list,
    options: dict,
    ray_address: str,
    actors: int | None,
    cpus: float,
    engine_kwargs: dict,
):
    from .ray_runner import RayBatchRunner, RaySettings

    verbose = click.get_current_context().find_root().params.get("verbose", False)
    return RayBatchRunner(
        store,
        engine_kwargs,
        description,
        analyzers=analyzers,
        options=options,
        progress=None,
        settings=RaySettings(address=ray_address, actors=actors, cpus_per_actor=cpus),
        verbose=bool(verbose),
    )


def window(runner) -> SimpleNamespace:
    """What `_window_note` reads off an engine, from the first actor's engine."""
    info = runner.engine_info or {}
    return SimpleNamespace(
        max_input_tokens=info.get("max_input_tokens"), window_origin=info.get("window_origin", "default")
    )


def progress(store, output_parquet: str | None, progress):
    """The batch's progress object, wrapped by the Parquet writer when --output-parquet is given."""
    if not output_parquet:
        return progress
    from .parquet_io import ParquetSink

    return ParquetSink(store, output_parquet, progress)
