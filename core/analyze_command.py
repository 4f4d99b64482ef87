"""`revprompt analyze`: one text, one file, or a whole site, into ranked prompts stored in DuckDB."""

from __future__ import annotations

import json
import sys
import warnings

import click

from ..sources import dataforseo_cli
from ..sources.dataforseo_cli import dataforseo_options
from . import ray_cli
from .cli_options import beams_option, db_option, hardware_options, load_engine, rerank_option
from .errors import UserError
from .ray_cli import ray_options
from .types import DEFAULT_BEAMS, DEFAULT_MAX_NEW_TOKENS, DEFAULT_TOP_N

DEFAULT_CONCURRENCY = 4
DEFAULT_TIMEOUT = 20.0


def engine_description(
    model: str | None = None,
    dtype: str = "auto",
    top_n: int = DEFAULT_TOP_N,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    max_input_tokens: int | None = None,
    method: str = "fast",
    rerank: str = "perplexity",
    beams: int = DEFAULT_BEAMS,
) -> dict:
    """The engine settings a run is keyed by (with its targets and options: core/batch.py `target_key`).
    The TUI's paste builds its description here too, so a pasted text and `analyze -` share a run key."""
    description = {
        "model": model or "default",
        "top_n": top_n,
        "max_new_tokens": max_new_tokens,
        "max_input_tokens": max_input_tokens,
        "method": method,
        "dtype": dtype,
    }
    if rerank != "perplexity":  # absent by default, so the runs stored before the option keep their keys
        description["rerank"] = rerank
    if beams != DEFAULT_BEAMS:  # likewise
        description["beams"] = beams
    return description


def batch_options(
    max_pages: int | None = None,
    retry_failed: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout: float = DEFAULT_TIMEOUT,
    **source_values,
) -> dict:
    """The batch options of `revprompt analyze`, defaults included: the batch's own, then the options the
    registered sources declare (`Source.cli_options`: `source_values`, else their defaults; None is left out).
    Those that are not run-neutral are part of the run key, so every caller that means "as analyze would" takes
    them from here."""
    options = {"max_pages": max_pages, "retry_failed": retry_failed, "concurrency": concurrency, "timeout": timeout}
    for name, param in source_cli_options().items():
        value = source_values.get(name, param.default)
        if value is not None:
            options[name] = value
    return options


def source_cli_options() -> dict[str, click.Option]:
    """The options the registered sources add to `analyze` (sources/base.py `Source.cli_options`) by name, each
    once: the first source to declare it wins."""
    from .plugin_manager import sources

    found: dict[str, click.Option] = {}
    for source in sources():
        for param in source.cli_options:
            if param.name is not None:
                found.setdefault(param.name, param)
    return found


class AnalyzeCommand(click.Command):
    """`analyze`, with the options of the registered sources inserted after --max-pages (as Harlequin adds its
    adapters' options to its command) whenever the command is parsed or shown."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        own = self.__dict__.setdefault("_own_params", list(self.params))
        names = {p.name for p in own}
        at = next((i + 1 for i, p in enumerate(own) if p.name == "max_pages"), len(own))
        added = [p for name, p in source_cli_options().items() if name not in names]
        self.params = own[:at] + added + own[at:]
        return super().get_params(ctx)


@click.command("analyze", cls=AnalyzeCommand)
@click.argument("targets", nargs=-1)
@db_option()
@click.option(
    "--model",
    default=None,
    envvar="REVPROMPT_MODEL",
    help="'base', a local model or PEFT adapter directory, or a Hugging Face id. Default: the shipped model.",
)
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON (one object per document).")
@click.option(
    "--top", "top_n", default=DEFAULT_TOP_N, show_default=True, help="How many ranked candidates to keep per text."
)
@click.option(
    "--max-new-tokens", default=DEFAULT_MAX_NEW_TOKENS, show_default=True, help="Longest prompt the decoder may write."
)
@click.option(
    "--max-input-tokens",
    type=int,
    default=None,
    help="Longer inputs are read up to this many tokens (one note per run says how many were longer). "
    "Default: the length the model was trained on (192 for the shipped adapter), else 2048.",
)
@click.option("--source", "source_name", default=None, help="Force a source plugin (see `revprompt plugins`).")
@click.option(
    "--urls", "urls_file", type=click.Path(dir_okay=False), default=None, help="A file with one URL per line."
)
@click.option("--crawl", "crawl_url", default=None, help="Crawl a site from this URL (same host, robots.txt obeyed).")
@click.option(
    "--max-pages",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after this many pages (crawl: default 100; sitemaps: all they list).",
)
@click.option(
    "--strip-params",
    default=None,
    metavar="NAMES",
    help="Query parameters to drop from page URLs besides the trackers and session ids dropped by default "
    "(utm_*, gclid, fbclid, sessionid, phpsessid, jsessionid, sid, ...): comma-separated, "
    "'name*' for a prefix. E.g. --strip-params search,sort",
)
@click.option(
    "--keep-params",
    default=None,
    metavar="NAMES",
    help="Query parameters to keep in page URLs although dropped by default (e.g. sid); '*' keeps all.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 32),
    default=DEFAULT_CONCURRENCY,
    show_default=True,
    help="Pages fetched at the same time.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds a page may take in all (connecting, waiting, downloading) before it counts as failed.",
)
@click.option("--resume", "resume_run_id", default=None, help="Continue an earlier run by its run_id.")
@click.option("--retry-failed", is_flag=True, help="On resume, retry documents that failed instead of skipping them.")
@click.option("--no-plugins", is_flag=True, help="Skip the analysis plugins (key phrases, word frequencies, intent).")
@click.option(
    "--kind",
    type=click.Choice(["auto", "response", "page"]),
    default="auto",
    show_default=True,
    help="What the targets are. auto: URLs, crawls, DataForSEO and .html files are web pages; pasted text, "
    "standard input and .txt/.md files are assistant responses. A candidate that copies a page's text is "
    "ranked last; on a response it is not (answers often restate their prompt).",
)
@click.option(
    "--method",
    type=click.Choice(["fast", "reference"]),
    default="fast",
    show_default=True,
    help="The batched sweep, or the plain per-config decoder it is checked against.",
)
@click.option(
    "--batch-docs",
    type=click.IntRange(min=1),
    default=None,
    help="Documents decoded together in one batched sweep: faster per document, more lost if killed "
    "[default: 16 on a CPU, 64 on a GPU (fewer if its memory is short); with --ray, 4 per actor]. A local batch does not wait for slow fetches to fill a group.",
)
@hardware_options
@rerank_option
@beams_option
@dataforseo_options
@ray_options
def analyze_command(
    targets,
    db,
    model,
    as_json,
    top_n,
    max_new_tokens,
    max_input_tokens,
    source_name,
    urls_file,
    crawl_url,
    max_pages,
    strip_params,
    keep_params,
    concurrency,
    timeout,
    resume_run_id,
    retry_failed,
    no_plugins,
    kind,
    method,
    dtype,
    device,
    rerank,
    beams,
    batch_docs,
    ray_address,
    ray_actors,
    ray_cpus,
    output_parquet,
    **extra,
):
    """Propose the prompts that most plausibly produced each TARGET.

    \b
    A TARGET is text, a file or folder (.txt/.md/.html), '-' for standard input, a URL or a sitemap URL.
    Every document and its ranked candidates are stored in the --db file; re-running the same command
    resumes an interrupted batch instead of starting over.

    \b
    Examples:
      revprompt analyze "Here are five tips for better sleep: ..."
      revprompt analyze article.md --json
      cat page.txt | revprompt analyze -
      revprompt analyze https://example.com/sitemap.xml
      revprompt analyze --source sitemap https://example.com/     (sitemaps named in robots.txt)
      revprompt analyze --urls urls.txt
      revprompt analyze --crawl https://example.com --max-pages 50
      revprompt analyze --source dataforseo https://example.com/page
      revprompt analyze --serp "best running shoes" --location "United Kingdom" --estimate
    """
    from .batch import BatchRunner
    from .engine import InputTruncatedWarning
    from .plugin_manager import analyzers as registered_analyzers
    from .progress import BatchProgress
    from .store import Store

    # the registered sources' own options (--max-depth, --crawl-delay: sources/crawl.py), and DataForSEO's
    source_values = {name: extra.pop(name) for name in source_cli_options() if name in extra}
    dataforseo = extra
    targets = list(targets)
    ray_address = ray_cli.address(ray_address, targets)
    if urls_file:
        targets.append(urls_file)
        source_name = source_name or "urls"
    if crawl_url:
        targets.append(crawl_url)
        source_name = source_name or "crawl"
    options: dict = {}
    source_name = dataforseo_cli.prepare(dataforseo, targets, source_name, options)
    if not targets:
        raise UserError(
            "nothing to analyse: give text, a file, '-', a URL, --urls FILE or --crawl URL "
            "(see `revprompt analyze --help`)"
        )
    options.update(batch_options(max_pages, retry_failed, concurrency, timeout, **source_values))
    if strip_params or keep_params:  # only when given: the runs of earlier commands keep their target_key
        options.update(strip_params=strip_params, keep_params=keep_params)
    if kind != "auto":  # likewise: core/types.py Document.kind reads it from each document's meta
        options["kind"] = kind
    command = "analyze " + " ".join(t if len(t) < 200 else t[:200] + "..." for t in targets)
    if targets == ["-"] and source_name in (None, "text"):
        # Piped text is read now, so the run is keyed by the text itself, as a text pasted in the TUI is
        # (`revprompt analyze -` twice with different texts are two runs, never one resumed by the other).
        from ..sources.text import read_stdin

        targets, source_name = [read_stdin()], "text"
    if dataforseo.get("estimate_only"):
        click.echo(dataforseo_cli.estimate(dataforseo, targets, source_name, options), err=True)
        return
    description = engine_description(model, dtype, top_n, max_new_tokens, max_input_tokens, method, rerank, beams)

    built = []  # the engine, once the runner has needed one (a resumed run may not)

    def make_engine():
        engine = load_engine(
            model,
            dtype=dtype,
            device=device,
            top_n=top_n,
            max_new_tokens=max_new_tokens,
            max_input_tokens=max_input_tokens,
            method=method,
            batch_docs=batch_docs,
            rerank=rerank,
            beams=beams,
        )
        built.append(engine)
        return engine

    # Per-text truncation warnings are folded into one note below: a web page is always longer than the window.
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("ignore", InputTruncatedWarning)
        with Store(db) as store:
            runner = (
                BatchRunner(
                    store,
                    make_engine,
                    description,
                    analyzers=[] if no_plugins else registered_analyzers(),
                    options=options,
                    progress=None,
                )
                if ray_address is None
                else ray_cli.runner(  # --ray: the same batch, loads and sweeps on a cluster
                    store,
                    description,
                    [] if no_plugins else registered_analyzers(),
                    options,
                    ray_address,
                    ray_actors,
                    ray_cpus,
                    dict(
                        model=model,
                        dtype=dtype,
                        device=device,
                        top_n=top_n,
                        max_new_tokens=max_new_tokens,
                        max_input_tokens=max_input_tokens,
                        method=method,
                        batch_docs=batch_docs,
                        rerank=rerank,
                        beams=beams,
                    ),
                )
            )
            progress = BatchProgress(enabled=not as_json or sys.stderr.isatty())
            runner.progress = ray_cli.progress(store, output_parquet, progress)
            summary = None
            try:
                summary = runner.run(command, targets, source_name, resume_run_id)
                if output_parquet:
                    runner.progress.flush(summary.run_id)  # the rest, and the run's row as it ends
            finally:
                dataforseo_cli.finish(store, summary.run_id if summary else None, options)
    # One target that made one document (a text, a file, a page) prints its candidates; anything else is a batch.
    single = len(targets) == 1 and not (urls_file or crawl_url) and len(summary.results) + summary.skipped <= 1
    _report(summary, as_json, single)
    if built or getattr(runner, "engine_info", None):
        _window_note(built[0] if built else ray_cli.window(runner), summary, single)
    # The store is closed and the output written: the process may end without tearing torch down (0.6 s).
    from . import fast_exit

    fast_exit.request()


def _window_note(engine, summary, single: bool) -> None:
    from .engine import window_note

    read = [result for _, result, _ in summary.results if result is not None]
    note = window_note(
        getattr(engine, "max_input_tokens", None),
        getattr(engine, "window_origin", "default"),
        len(read),
        sum(1 for r in read if r.truncated),
        single,
    )
    if note:
        click.echo(note, err=True)


def _report(summary, as_json: bool, single: bool) -> None:
    from .output import print_result, result_to_json

    if as_json:
        for doc, result, doc_id in summary.results:
            if result is not None:
                out = result_to_json(doc.uri, result, doc_id, summary.run_id)
                out.update(title=doc.title, status=doc.status)
            else:
                out = {
                    "uri": doc.uri,
                    "run_id": summary.run_id,
                    "doc_id": doc_id,
                    "status": doc.status,
                    "error": doc.error,
                }
                if doc.status == "duplicate":
                    out["duplicate_of"] = doc.meta.get("duplicate_of")
            click.echo(json.dumps(out, ensure_ascii=False))
    else:
        for doc, result, doc_id in summary.results:
            if result is not None and (single or len(summary.results) <= 3):
                title = doc.title or (doc.uri if not doc.uri.startswith("text:") else "text")
                print_result(f"{title}  (doc {doc_id}, {result.n_input_tokens} tokens, {result.seconds:.1f}s)", result)
        if not single or len(summary.results) > 3:
            _print_batch_table(summary)
    click.echo(
        f"run {summary.run_id}: {summary.done} done, {summary.failed} failed"
        + (f", {summary.duplicates} duplicates (not analysed again)" if summary.duplicates else "")
        + (f", {summary.skipped} already done" if summary.skipped else ""),
        err=True,
    )
    failed_single = single and summary.failed and not summary.done
    if failed_single:
        doc = summary.results[0][0]
        # Unreadable local input is a usage error (2); a page that failed to fetch is a runtime one (1).
        local = doc.source in ("file", "text", "stdin")
        raise UserError(doc.error if local else f"{doc.uri}: {doc.error}", 2 if local else 1)
    if summary.failed and not summary.done and not summary.skipped and not summary.duplicates:
        # Nothing worked: a script or CI job running the batch must see it (the rows are stored all the same).
        raise UserError(
            f"all {summary.failed} documents of run {summary.run_id} failed; see their errors with "
            f"revprompt sql \"SELECT uri, error FROM documents WHERE run_id = '{summary.run_id}'\"",
            1,
        )


MAX_TABLE_ROWS = 50  # a site batch can hold thousands of pages: the table shows the first ones


def _print_batch_table(summary) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"run {summary.run_id}", title_justify="left")
    table.add_column("doc", justify="right")
    table.add_column("uri", overflow="fold", max_width=50)
    table.add_column("status")
    table.add_column("best prompt / error", overflow="fold")
    table.add_column("ppl", justify="right")
    for doc, result, doc_id in summary.results[:MAX_TABLE_ROWS]:
        if result is not None and result.candidates:
            best = result.candidates[0]
            table.add_row(str(doc_id), escape(doc.uri), doc.status, escape(best.prompt), f"{best.perplexity:.2f}")
        elif doc.status == "duplicate":
            table.add_row(
                str(doc_id),
                escape(doc.uri),
                "[dim]duplicate[/dim]",
                escape(f"same page as {doc.meta.get('duplicate_of')}"),
                "",
            )
        else:
            table.add_row(str(doc_id), escape(doc.uri), f"[red]{doc.status}[/red]", escape(doc.error or ""), "")
    console = Console()
    console.print(table)
    hidden = len(summary.results) - MAX_TABLE_ROWS
    if hidden > 0:
        console.print(
            f'... and {hidden} more: revprompt sql "SELECT uri, status, error FROM documents '
            f"WHERE run_id = '{summary.run_id}'\"",
            markup=False,
            highlight=False,
        )
