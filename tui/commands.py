"""`revprompt tui [DB]`: the CLI entry to the Textual app (registered through the plugin hooks)."""

from __future__ import annotations

from pathlib import Path

import click

from revprompt.core.errors import UserError
from revprompt.core.hookspecs import hookimpl
from revprompt.core.store import DEFAULT_DB


@click.command("tui")
@click.argument("db", required=False, default=DEFAULT_DB, type=click.Path(dir_okay=False))
@click.option("--model", default=None, help="Model for the paste screen (loaded on the first sweep); "
              "default: the packaged model.")
def tui_command(db: str, model: str | None) -> None:
    """Explore a results database: runs, documents, candidates, token confidence, SQL, paste a text."""
    if not Path(db).exists():
        raise UserError(f"no database at {db} (run `revprompt analyze` first, or pass the path)")
    if Path(db).is_dir():
        raise UserError(f"{db} is a directory, not a DuckDB database")
    app = build_app(db, model)
    app.run()


def build_app(db: str, model: str | None = None):
    from .app import RevpromptApp

    def engine_factory():
        from revprompt.core.engine import Engine

        return Engine.load(model)

    return RevpromptApp(db, engine_factory=engine_factory, model_label=model or "the packaged model")


@hookimpl
def register_commands(cli):
    cli.add_command(tui_command)
