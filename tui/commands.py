"""`revprompt tui [--db DB]`: the CLI entry to the Textual app (registered through the plugin hooks)."""

from __future__ import annotations

from pathlib import Path

import click

from ..core.cli_options import db_option, hardware_options, load_engine
from ..core.errors import UserError
from ..core.hookspecs import hookimpl


@click.command("tui")
@click.argument("db_argument", metavar="[DB]", required=False, default=None, type=click.Path(dir_okay=False))
@db_option()
@click.option(
    "--model",
    default=None,
    help="Model for the paste screen (loaded once, in the background, at start); default: the packaged model.",
)
@hardware_options
def tui_command(db_argument: str | None, db: str, model: str | None, dtype: str, device: str) -> None:
    """Explore a results database: runs, documents, candidates, token confidence, SQL, paste a text.

    The database is named with --db, as for every other command; a bare DB argument still works (deprecated).
    """
    if db_argument is not None:
        given = click.get_current_context().get_parameter_source("db") == click.core.ParameterSource.COMMANDLINE
        if given and db != db_argument:
            raise click.UsageError(f"two databases given: --db {db} and {db_argument}; give only --db")
        click.echo("revprompt: note: `revprompt tui DB` is deprecated; use `revprompt tui --db DB`", err=True)
        db = db_argument
    if not Path(db).exists():
        raise UserError(f"no database at {db} (run `revprompt analyze` first, or pass --db)")
    if Path(db).is_dir():
        raise UserError(f"{db} is a directory, not a DuckDB database")
    app = build_app(db, model, dtype=dtype, device=device)
    app.run()


def build_app(db: str, model: str | None = None, dtype: str = "auto", device: str = "auto"):
    from ..core.analyze_command import engine_description
    from .app import RevpromptApp

    def engine_factory():
        return load_engine(model, dtype=dtype, device=device)

    # preload: the model is loaded in a worker while the user browses, so the first paste only sweeps.
    # The engine keeps `revprompt analyze`'s default settings, and the description says so: a pasted text
    # gets the run key the same text piped to `revprompt analyze -` gets.
    return RevpromptApp(
        db,
        engine_factory=engine_factory,
        model_label=model or "the packaged model",
        preload=True,
        engine_description=engine_description(model, dtype),
    )


@hookimpl
def register_commands(cli):
    cli.add_command(tui_command)
