"""The `revprompt` command line: thin commands over the library. Plugins add commands through a hook."""

from __future__ import annotations

import logging
import os
import sys
import warnings

import click

from .cli_options import db_option
from .errors import UserError

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class RevpromptGroup(click.Group):
    """Loads plugin commands lazily so `revprompt --help` lists them and a broken plugin names itself."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._plugins_loaded = False

    def _load_plugins(self):
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        from .plugin_manager import get_plugin_manager

        get_plugin_manager().hook.register_commands(cli=self)

    def list_commands(self, ctx):
        self._load_plugins()
        return super().list_commands(ctx)

    def get_command(self, ctx, name):
        self._load_plugins()
        return super().get_command(ctx, name)


@click.group(cls=RevpromptGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="revprompt")
@click.option("-v", "--verbose", is_flag=True, help="Log what the engine and sources are doing.")
def cli(verbose):
    """revprompt: find the prompts that most plausibly produced a text.

    \b
    Quick start:
      revprompt analyze "Paris is the capital of France. It is known for ..."
      revprompt analyze article.md --json
      revprompt analyze https://example.com/sitemap.xml
      revprompt sql "SELECT prompt, perplexity FROM candidates ORDER BY perplexity LIMIT 5"

    Results are stored in a DuckDB file (./revprompt.duckdb unless --db says otherwise).
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(name)s: %(message)s")


@cli.command("sql")
@click.argument("query")
@db_option(read_only=True)
@click.option("--json", "as_json", is_flag=True, help="Print rows as JSON objects.")
@click.option("--max-width", default=60, show_default=True, help="Truncate wide cells in the table view.")
@click.option(
    "--parquet",
    "parquet_dir",
    default=None,
    metavar="DIR",
    help="Query the Parquet shards of `analyze --output-parquet DIR` (a folder or URL) instead of --db.",
)
def sql_command(query, db, as_json, max_width, parquet_dir):
    """Run one read-only SQL QUERY against the results database and print a table.

    \b
    Tables: runs, documents, candidates, candidate_tokens, plus one per analysis plugin.
    Examples:
      revprompt sql "SELECT count(*) FROM candidates"
      revprompt sql "SELECT d.uri, c.prompt, c.perplexity FROM candidates c JOIN documents d USING (doc_id) WHERE c.rank = 1"

    The query runs in a sandbox: one SELECT, EXPLAIN, PRAGMA or CALL statement over the results file only (no
    other files, ATTACH, COPY, INSTALL or SET).
    """
    from . import sandbox
    from .output import print_rows
    from .store import open_sandbox

    if parquet_dir:  # the shards, one row per document, in memory and locked down the same way
        from .parquet_io import open_parquet_sandbox

        store = open_parquet_sandbox(parquet_dir)
    else:
        store = open_sandbox(db)
    with store:
        columns, rows = sandbox.query(store, query)
    print_rows(columns, rows, as_json=as_json, max_width=max_width)


from .analyze_command import analyze_command  # noqa: E402  (defined in its own module, registered here)

cli.add_command(analyze_command)

from .serve import serve_command  # noqa: E402

cli.add_command(serve_command)

from .parquet_io import import_command  # noqa: E402  (`revprompt import DIR`: Parquet shards into --db)

cli.add_command(import_command)


def main(argv=None):
    """Entry point: user errors become one line on stderr and an exit code, never a traceback."""
    warnings.simplefilter("ignore", FutureWarning)
    try:
        cli.main(args=argv, standalone_mode=False, prog_name="revprompt")
    except UserError as exc:
        click.echo(f"revprompt: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort as exc:
        # click turns Ctrl-C into Abort (after a blank line that closes the terminal's ^C)
        if isinstance(exc.__cause__, KeyboardInterrupt):
            _interrupted(exc.__cause__)
        click.echo("revprompt: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt as exc:
        _interrupted(exc)
    except BrokenPipeError:
        sys.exit(0)


def entry():
    """The program's entry point (`revprompt`, `python -m revprompt`): `main`, then, where the command asked for it
    (core/fast_exit.py), the end of the process without the interpreter's teardown. Ctrl-C ends that way too:
    by then the command's stores are closed (their `with` blocks have unwound) and the line saying what was
    kept is printed, and the user is waiting for the prompt."""
    from . import fast_exit

    try:
        main()
    except SystemExit as exc:
        if exc.code == 130:
            fast_exit.exit_now(130)
        raise
    if fast_exit.requested():
        fast_exit.exit_now(0)


def _interrupted(exc: KeyboardInterrupt):
    """Ctrl-C: one line, no traceback, exit 130. A batch says which run stopped and how to go on."""
    run_id = getattr(exc, "run_id", None)
    if run_id:
        click.echo(
            f"revprompt: interrupted; run {run_id} keeps the documents it finished: re-run the same command "
            f"(or add --resume {run_id}) to continue",
            err=True,
        )
    else:
        click.echo("revprompt: interrupted; finished work is stored (re-run the command to resume)", err=True)
    sys.exit(130)
