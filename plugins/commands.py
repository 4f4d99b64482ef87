"""Commands of the analysis plugins: `revprompt plugins`, `revprompt export`, `revprompt report`,
`revprompt consistency`.

Registered through the `register_commands` hook like any third-party plugin's commands.
"""

from __future__ import annotations

import json

import click

from ..core.cli_options import db_option, load_engine
from ..core.hookspecs import hookimpl


# -- plugins ------------------------------------------------------------------------------------------------
def _call_impl(impl, **kwargs):
    return impl.function(*[kwargs[name] for name in impl.argnames])


def plugin_inventory() -> list[dict]:
    """Every loaded plugin with what it registers: sources, analyzers (and their tables), commands."""
    from ..core.plugin_manager import get_plugin_manager, plugin_names
    from ..core.views import analyzer_views, table_names

    pm = get_plugin_manager()
    info = {
        name: {"plugin": name, "origin": origin, "sources": [], "analyzers": [], "commands": []}
        for name, origin in plugin_names()
    }

    def collect(hook_name: str, key: str, describe):
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            items: list = []
            try:
                _call_impl(impl, register=items.append)
            except Exception as exc:  # a broken plugin shows itself in the listing instead of hiding the rest
                items = []
                info[impl.plugin_name].setdefault("errors", []).append(f"{hook_name}: {type(exc).__name__}: {exc}")
            info[impl.plugin_name][key].extend(describe(item) for item in items)

    collect(
        "register_sources",
        "sources",
        lambda s: {"name": getattr(s, "name", type(s).__name__), "description": getattr(s, "description", "")},
    )
    collect(
        "register_analyzers",
        "analyzers",
        lambda a: {
            "name": getattr(a, "name", type(a).__name__),
            "description": getattr(a, "description", ""),
            "tables": table_names(list(getattr(a, "tables", None) or [])),
            "views": [v.title for v in analyzer_views([a])],
        },
    )
    for impl in pm.hook.register_commands.get_hookimpls():
        group = click.Group()
        try:
            _call_impl(impl, cli=group)
        except Exception as exc:
            info[impl.plugin_name].setdefault("errors", []).append(f"register_commands: {type(exc).__name__}: {exc}")
        info[impl.plugin_name]["commands"].extend(sorted(group.commands))
    return list(info.values())


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per plugin.")
def plugins_command(as_json):
    """List the loaded plugins (built-in and from the `revprompt` entry-point group) and what they add."""
    inventory = plugin_inventory()
    if as_json:
        for entry in inventory:
            click.echo(json.dumps(entry, ensure_ascii=False))
        return
    for entry in inventory:
        click.echo(click.style(entry["plugin"], bold=True) + f"  ({entry['origin']})")
        lines = (
            [("source", s["name"], s["description"]) for s in entry["sources"]]
            + [
                (
                    "analyzer",
                    a["name"],
                    a["description"]
                    + (f"  [tables: {', '.join(a['tables'])}]" if a["tables"] else "")
                    + (f"  [views: {', '.join(a['views'])}]" if a["views"] else ""),
                )
                for a in entry["analyzers"]
            ]
            + [("command", c, "") for c in entry["commands"]]
            + [("error", "", e) for e in entry.get("errors", [])]
        )
        width = max((len(name) for _, name, _ in lines), default=0)
        for kind, name, desc in lines:
            click.echo(f"  {kind:<9}{name:<{width}}  {desc}".rstrip())
        if not lines:
            click.echo("  (registers nothing)")


# -- export -------------------------------------------------------------------------------------------------
@click.command("export")
@click.option("--table", "table", metavar="NAME", help="Export this whole table.")
@click.option("--query", "query", metavar="SQL", help="Export the result of this query (one SELECT statement).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["parquet", "csv", "jsonl"], case_sensitive=False),
    help="Output format (default: from the file name's extension).",
)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="File to write.")
@db_option(read_only=True)
def export_command(table, query, fmt, output, db):
    """Export a table or a query of the results database to Parquet, CSV or JSON Lines.

    \b
    Examples:
      revprompt export --table candidates -o candidates.parquet
      revprompt export --query "SELECT d.uri, k.phrase, k.weight FROM key_phrases k JOIN documents d USING (doc_id)" --format csv -o phrases.csv
    """
    from ..core.store import open_sandbox
    from .export import export

    # The sandbox (core/sandbox.py) may write this one file and read nothing but the database.
    with open_sandbox(db, write_to=output) as store:
        n = export(store, output, fmt=fmt, table=table, query=query)
    click.echo(f"wrote {n} row{'s' if n != 1 else ''} to {output}", err=True)


# -- report -------------------------------------------------------------------------------------------------
@click.command("report")
@click.argument("run_id", required=False)
@click.option(
    "-o",
    "--output",
    default="report.html",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="HTML file to write.",
)
@db_option(read_only=True)
def report_command(run_id, output, db):
    """Write one self-contained HTML report of a run (default: the latest) for a client to open.

    \b
    No network at view time: CSS, JS, charts and data are all inside the file, and its Content-Security-Policy
    forbids every fetch. Shows the run summary and failures; per page the ranked candidate prompts with
    perplexity and decoding config, tokens shaded by confidence, a per-token bar chart, key phrases and a
    word-frequency heatmap; the site's intent map, cannibalisation pairs and keyword matches (when present).

    \b
    Examples:
      revprompt report -o report.html
      revprompt report 3f2a9c1b --db site.duckdb -o site-report.html
    """
    from ..core.store import open_sandbox
    from .report import write_report

    with open_sandbox(db) as store:
        info = write_report(store, output, run_id)
    click.echo(
        f"wrote {output}: run {info['run_id']}, {info['docs']} page{'s' if info['docs'] != 1 else ''}, "
        f"{info['bytes'] / 1e6:.2f} MB",
        err=True,
    )


# -- consistency --------------------------------------------------------------------------------------------
@click.command("consistency")
@click.argument("pairs", type=click.Path(dir_okay=False))
@click.option("--limit", type=click.IntRange(min=1), help="Score only the first N pairs.")
@click.option(
    "--flag-fraction",
    default=0.1,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of the pairs to flag as weakest.",
)
@click.option("--model", "model", default=None, help="Model id or local directory (default: the packaged model).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per pair (input order).")
@click.option("--all", "show_all", is_flag=True, help="Show every pair in the table, not only the flagged ones.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Write every input record plus a `consistency` object to this JSONL file.",
)
def consistency_command(pairs, limit, flag_fraction, model, as_json, show_all, output):
    """Score how well each response in PAIRS (JSONL of prompt/response) supports its prompt; flag the weakest.

    \b
    perplexity: of the true prompt given the response (lower: the response points at its prompt)
    rank:       1 + how many of the model's own candidate prompts are likelier than the true one
    The weakest pairs (worst rank, then highest perplexity) are flagged for review.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .consistency import read_pairs, score_pairs, weakest_first

    records = read_pairs(pairs, limit=limit)
    engine = load_engine(model)
    err = Console(stderr=True)
    with Progress(
        TextColumn("scoring pairs"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("pairs", total=len(records))
        scores = score_pairs(engine, records, flag_fraction=flag_fraction, progress=lambda s: bar.advance(task))

    if output:
        with open(output, "w", encoding="utf-8") as fh:
            for pair, s in zip(records, scores):
                fh.write(json.dumps({**pair.record, "consistency": s.to_dict()}, ensure_ascii=False) + "\n")
    if as_json:
        for s in scores:
            click.echo(json.dumps(s.to_dict(), ensure_ascii=False))
        return
    from rich.table import Table

    flagged = [s for s in weakest_first(scores) if s.flagged]
    shown = weakest_first(scores) if show_all else flagged
    table = Table(title=f"{len(flagged)} of {len(scores)} pairs flagged (weakest first)", title_justify="left")
    for col, justify in (
        ("line", "right"),
        ("flag", "left"),
        ("rank", "right"),
        ("perplexity", "right"),
        ("best ppl", "right"),
        ("prompt", "left"),
        ("model's best guess", "left"),
    ):
        table.add_column(
            col, justify=justify, overflow="fold", max_width=None if col not in ("prompt", "model's best guess") else 50
        )
    for s in shown:
        table.add_row(
            str(s.line or s.index + 1),
            "⚑" if s.flagged else "",
            f"{s.rank}/{s.n_candidates + 1}",
            f"{s.perplexity:.2f}",
            "" if s.best_perplexity is None else f"{s.best_perplexity:.2f}",
            s.prompt,
            s.best_prompt or "",
        )
    Console().print(table)


@hookimpl
def register_commands(cli):
    cli.add_command(plugins_command)
    cli.add_command(export_command)
    cli.add_command(report_command)
    cli.add_command(consistency_command)
