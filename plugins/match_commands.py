"""`revprompt match` (which analysed page answers a keyword) and `revprompt gsc import` (Search Console exports).

Registered through the `register_commands` hook like any plugin's commands. The work is in plugins/match.py
(shortlist, re-rank, judge, store) and plugins/gsc.py (reading exports); this module reads the user's input,
checks it before the model is loaded, shows progress and prints the findings.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from ..core.cli_options import db_option, hardware_options
from ..core.errors import UserError
from ..core.hookspecs import hookimpl
from . import match as matching

MAX_TABLE_ROWS = 200


# -- progress -----------------------------------------------------------------------------------------------------
class _Progress:
    """A rich bar on a terminal; elsewhere a plain line at most every 10 s (and at the end)."""

    def __init__(self, label: str, enabled: bool = True):
        self.label = label
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self._bar = None
        self._task = None
        self._last = 0.0
        self._start = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 1:
            return
        if self.tty:
            if self._bar is None:
                from rich.console import Console
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TextColumn,
                    TimeElapsedColumn,
                    TimeRemainingColumn,
                )

                self._bar = Progress(
                    TextColumn(self.label),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    TimeRemainingColumn(),
                    console=Console(stderr=True),
                    transient=True,
                )
                self._bar.start()
                self._task = self._bar.add_task(self.label, total=total)
            self._bar.update(self._task, completed=done)
            if done >= total:
                self.close()
            return
        now = time.monotonic()
        if done >= total or now - self._last >= 10:
            self._last = now
            elapsed = now - self._start
            eta = elapsed / done * (total - done) if done else 0
            click.echo(f"revprompt: {self.label} {done}/{total} pages ({elapsed:.0f}s, eta {eta:.0f}s)", err=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


# -- match ----------------------------------------------------------------------------------------------------
@click.command("match")
@click.argument("keywords_file", required=False, metavar="[KEYWORDS_FILE]")
@click.option(
    "--keyword",
    "-k",
    "keyword_options",
    multiple=True,
    metavar="TEXT",
    help="A keyword to match (repeatable); with or without KEYWORDS_FILE.",
)
@click.option(
    "--from-gsc",
    is_flag=True,
    help="Match the queries of the imported Search Console data (`revprompt gsc import`) and report the "
    "pages that answer their queries poorly and the queries Google maps to another page.",
)
@db_option(help_text="DuckDB results file with analysed pages; keyword_matches is written to it.")
@click.option(
    "--run",
    "run_id",
    default=None,
    metavar="RUN_ID",
    help="Match against this run's pages only (default: every analysed page, latest analysis of each).",
)
@click.option(
    "--shortlist",
    default=matching.DEFAULT_SHORTLIST,
    show_default=True,
    type=click.IntRange(1, 200),
    help="Pages per keyword (nearest by MiniLM cosine) that the model re-ranks.",
)
@click.option(
    "--no-page-nll",
    type=float,
    default=None,
    help=f"Mean NLL past which no page answers a keyword (default {matching.NO_PAGE_NLL}, calibrated "
    "for the shipped model on dev pairs).",
)
@click.option(
    "--margin",
    type=float,
    default=None,
    help=f"Best and runner-up closer than this (mean NLL) flag cannibalisation (default "
    f"{matching.CANNIBALISATION_MARGIN}).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="With --from-gsc: only the N queries with the most impressions.",
)
@click.option(
    "--model",
    default=None,
    envvar="REVPROMPT_MODEL",
    help="'base', a local model or adapter directory. Default: the shipped model.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per keyword.")
@hardware_options
def match_command(
    keywords_file,
    keyword_options,
    from_gsc,
    db,
    run_id,
    shortlist,
    no_page_nll,
    margin,
    limit,
    model,
    as_json,
    dtype,
    device,
):
    """Which analysed page answers each keyword best, the runner-up, and whether any page answers it.

    \b
    Pages are shortlisted by MiniLM cosine, then re-ranked by the model's mean NLL of the keyword as the prompt
    given the page (lower is better). Per keyword: the best page, the runner-up and the margin between them
    (close: cannibalisation), or "no page answers this" when even the best page scores past the threshold.
    Results are stored in the keyword_matches table.

    \b
    KEYWORDS_FILE: one keyword a line ('#' comments), or a CSV with a keyword/query column; '-' reads stdin.
    Examples:
      revprompt match keywords.txt --db site.duckdb
      revprompt match -k "fix a leaking tap" -k "repot an orchid"
      revprompt gsc import search-console.csv && revprompt match --from-gsc
    """
    from ..core.store import Store
    from . import gsc

    keywords: list[str] = []
    if keywords_file:
        from ..sources.tabular import read_text

        keywords += matching.read_keywords(read_text(keywords_file, "keywords file"), keywords_file)
    keywords += list(keyword_options)
    if not keywords and not from_gsc:
        raise UserError(
            "no keywords: give a KEYWORDS_FILE, --keyword TEXT or --from-gsc (see `revprompt match --help`)"
        )
    if not Path(db).exists():
        raise UserError(f"no database at {db} (run `revprompt analyze` first, or pass --db)")
    no_page_nll = matching.NO_PAGE_NLL if no_page_nll is None else no_page_nll
    margin = matching.CANNIBALISATION_MARGIN if margin is None else margin

    # The database is held only to read (and cache page vectors) and, after the scoring, to write: a TUI or a
    # `revprompt sql` may open it in between.
    with Store(db) as store:
        pages = matching.load_pages(store, run_id)
        if not pages:
            raise UserError(
                f"no analysed pages in {db}"
                + (f" for run {run_id}" if run_id else "")
                + ": run `revprompt analyze` first"
            )
        queries, has_pairs = gsc.load_queries(store, limit) if from_gsc else ([], False)
        keywords = matching.unique_keywords(keywords + [q.query for q in queries])
        extra, gsc_info = _gsc_pairs(keywords, queries, pages)
        vectors = matching.page_vectors(pages, matching.default_embed, store)

    from ..core.cli_options import load_engine

    engine = load_engine(model, dtype=dtype, device=device)
    if (model or "default") not in ("default", matching.CALIBRATED_MODEL) and not as_json:
        click.echo(
            f"revprompt: note: the no-page threshold ({no_page_nll}) and margin ({margin}) were calibrated "
            f"for the {matching.CALIBRATED_MODEL} model; set --no-page-nll / --margin for this one",
            err=True,
        )
    progress = _Progress("matching", enabled=True)
    matcher = matching.Matcher(engine, shortlist=shortlist, no_page_nll=no_page_nll, margin=margin, progress=progress)
    try:
        results = matcher.match(keywords, pages, vectors, extra)
    finally:
        progress.close()
    for r, (pages_impr, google) in zip(results, gsc_info):
        r.gsc_pages, r.google_page = pages_impr, google
    with Store(db) as store:
        match_id = matching.save_matches(store, results, pages, engine.model_name)

    if as_json:
        for r in results:
            out = matching.result_json(r, pages)
            if from_gsc and r.keyword in {q.query for q in queries}:
                out["gsc"] = _gsc_flags(r)
            click.echo(json.dumps(out, ensure_ascii=False))
    else:
        _print_matches(results, pages, from_gsc)
        if from_gsc:
            _print_gsc(results, pages, queries, has_pairs)
    n_rows = sum(len(r.scored) for r in results)
    click.echo(
        f"revprompt: {len(results)} keyword{'s' if len(results) != 1 else ''} over {len(pages)} pages; "
        f"{n_rows} rows stored in keyword_matches (match_id {match_id})",
        err=True,
    )


MAX_GSC_PAGES_PER_QUERY = 5  # pages Search Console shows for a query that are scored besides the shortlist


def _gsc_pairs(keywords, queries, pages):
    """(extra pairs to score, per keyword (page index -> impressions, Google's page index or None))."""
    from .gsc import url_key

    index = {url_key(p.uri): i for i, p in enumerate(pages)}
    kw_index = {k: i for i, k in enumerate(keywords)}
    extra: dict[int, set[int]] = {}
    info: list[tuple[dict[int, float], int | None]] = [({}, None) for _ in keywords]
    for q in queries:
        k = kw_index[q.query]
        top = sorted(q.pages.items(), key=lambda item: -item[1][0])[:MAX_GSC_PAGES_PER_QUERY]
        impressions = {}
        for url, (impr, _clicks, _pos) in top:
            p = index.get(url_key(url))
            if p is not None:
                impressions[p] = impr
                extra.setdefault(k, set()).add(p)
        google = q.google_page
        info[k] = (impressions, index.get(url_key(google)) if google else None)
    return extra, info


def _gsc_flags(r: matching.KeywordResult) -> dict:
    g = r.scored_page(r.google_page) if r.google_page is not None else None
    return {
        "google_page_in_db": r.google_page is not None,
        "answered_poorly": g is not None and g.nll > r.no_page_nll,
        "mis_mapped": _mis_mapped(r),
    }


def _mis_mapped(r: matching.KeywordResult) -> bool:
    """The model's best page is another page than Google's, clearly (by more than the cannibalisation margin)."""
    if r.google_page is None or r.best is None or r.best.page == r.google_page or not r.answered:
        return False
    g = r.scored_page(r.google_page)
    return g is not None and g.nll - r.best.nll >= r.margin_threshold


# -- printing -------------------------------------------------------------------------------------------------
def _page_label(page: matching.Page, width: int = 60) -> str:
    label = page.uri if not page.uri.startswith("text:") else (page.title or page.uri)
    return label if len(label) <= width else label[: width - 1] + "…"


def _console():
    """Results on stdout: the terminal's width, or 200 columns when piped (a file, a program), so rows stay whole."""
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def _print_matches(results, pages, from_gsc: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(
        title="keyword → page (mean NLL of the keyword given the page: lower answers better)", title_justify="left"
    )
    for name, justify in (
        ("keyword", "left"),
        ("best page", "left"),
        ("nll", "right"),
        ("runner-up", "left"),
        ("nll", "right"),
        ("margin", "right"),
        ("verdict", "left"),
    ):
        table.add_column(name, justify=justify, overflow="fold")
    for r in results[:MAX_TABLE_ROWS]:
        best, runner = r.best, r.runner_up
        if not r.answered:
            verdict = f"[red]no page answers this[/red] (best {best.nll:.2f} > {r.no_page_nll:g})"
        elif r.cannibalisation:
            verdict = f"[yellow]cannibalisation[/yellow] (margin < {r.margin_threshold:g})"
        else:
            verdict = "clear"
        table.add_row(
            escape(r.keyword),
            escape(_page_label(pages[best.page])),
            f"{best.nll:.2f}",
            escape(_page_label(pages[runner.page])) if runner else "",
            f"{runner.nll:.2f}" if runner else "",
            f"{r.margin:.2f}" if r.margin is not None else "",
            verdict,
        )
    console = _console()
    console.print(table)
    if len(results) > MAX_TABLE_ROWS:
        console.print(
            f'... and {len(results) - MAX_TABLE_ROWS} more: revprompt sql "SELECT keyword, uri, nll, '
            'margin, answers, cannibalisation FROM keyword_matches WHERE rank = 1"',
            markup=False,
        )


def _print_gsc(results, pages, queries, has_pairs: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = _console()
    by_query = {q.query: q for q in queries}
    gsc_results = [r for r in results if r.keyword in by_query]
    if not has_pairs:
        console.print(
            "[yellow]Search Console data without query x page pairs[/yellow] (the web UI's export has "
            "Queries.csv and Pages.csv separately): every query was matched to its best page, but which "
            "page Google shows for it is unknown, so poorly answered and mis-mapped queries cannot be "
            "found. Import an API, Looker Studio or BigQuery export with query and page columns for that."
        )
        return

    # 1. per page: queries it gets impressions for but answers poorly
    poorly: dict[int, list[tuple[matching.KeywordResult, matching.Scored]]] = {}
    for r in gsc_results:
        for p in r.gsc_pages:
            s = r.scored_page(p)
            if s is not None and s.nll > r.no_page_nll:
                poorly.setdefault(p, []).append((r, s))
    table = Table(
        title="Optimisation targets: queries a page gets impressions for but answers poorly "
        "(nll past the no-page threshold)",
        title_justify="left",
    )
    for name in ("page", "query", "impressions", "position", "nll", "answered better by"):
        table.add_column(
            name, overflow="fold", justify="right" if name in ("impressions", "position", "nll") else "left"
        )
    order = sorted(poorly, key=lambda p: -sum(r.gsc_pages[p] for r, _ in poorly[p]))
    shown = 0
    for p in order:
        for r, s in sorted(poorly[p], key=lambda item: -item[0].gsc_pages[p]):
            if shown >= MAX_TABLE_ROWS:
                break
            q = by_query[r.keyword]
            pos = next((v[2] for u, v in q.pages.items() if _same(u, pages[p].uri)), None)
            better = r.best if r.best and r.best.page != p and r.answered else None
            table.add_row(
                escape(_page_label(pages[p], 50)),
                escape(r.keyword),
                f"{r.gsc_pages[p]:,.0f}",
                f"{pos:.1f}" if pos else "",
                f"{s.nll:.2f}",
                escape(f"{_page_label(pages[better.page], 50)} ({better.nll:.2f})") if better else "",
            )
            shown += 1
    console.print(
        table if poorly else "No poorly answered queries: every page answers the queries it gets impressions for."
    )

    # 2. mis-mapped queries
    mis = sorted((r for r in gsc_results if _mis_mapped(r)), key=lambda r: -by_query[r.keyword].impressions)
    table = Table(
        title="Mis-mapped queries: the model's best page is not the page Google shows most", title_justify="left"
    )
    for name in ("query", "impressions", "Google's page", "nll", "model's page", "nll"):
        table.add_column(name, overflow="fold", justify="right" if name in ("impressions", "nll") else "left")
    for r in mis[:MAX_TABLE_ROWS]:
        g = r.scored_page(r.google_page)
        table.add_row(
            escape(r.keyword),
            f"{by_query[r.keyword].impressions:,.0f}",
            escape(_page_label(pages[r.google_page], 45)),
            f"{g.nll:.2f}",
            escape(_page_label(pages[r.best.page], 45)),
            f"{r.best.nll:.2f}",
        )
    console.print(table if mis else "No mis-mapped queries.")

    missing = [r for r in gsc_results if r.google_page is None and by_query[r.keyword].pages]
    if missing:
        console.print(
            f"{len(missing)} quer{'ies' if len(missing) != 1 else 'y'} whose Google page is not among the "
            "analysed pages (analyse those pages to compare them): "
            + ", ".join(escape(r.keyword) for r in missing[:5])
            + (" ..." if len(missing) > 5 else "")
        )


def _same(a: str, b: str) -> bool:
    from .gsc import url_key

    return url_key(a) == url_key(b)


# -- gsc import -------------------------------------------------------------------------------------------------
@click.group("gsc")
def gsc_group():
    """Google Search Console data: import exports, then `revprompt match --from-gsc`."""


@gsc_group.command("import")
@click.argument("files", nargs=-1, required=True)
@db_option(help_text="DuckDB results file to store the rows in (gsc_rows).")
def gsc_import_command(files, db):
    """Import Search Console exports into the gsc_rows table.

    \b
    Reads query + page rows from Search Analytics API exports (CSV with query, page, clicks, impressions, ctr,
    position; or the API's JSON response), Looker Studio CSVs (Query, Landing Page, Url Clicks, Impressions,
    ...), BigQuery bulk-export tables (searchdata_url_impression: url, query, impressions, clicks,
    sum_position), and the web UI's Performance zip (Queries.csv, Pages.csv: no query x page pairs).
    Re-importing a file replaces its earlier rows.

    \b
    Examples:
      revprompt gsc import gsc-query-page.csv --db site.duckdb
      revprompt gsc import "https___example.com_-Performance-on-Search-2026-11-25.zip"
    """
    from ..core.store import Store
    from . import gsc

    parsed = [(f, gsc.read_export(f)) for f in files]  # every file checked before anything is written
    with Store(db) as store:
        for path, tables in parsed:
            source = str(Path(path).expanduser().resolve())
            _, replaced = gsc.save_export(store, tables, source)
            for t in tables:
                kind = "query x page rows" if t.pairs else "query rows" if all(r.query for r in t.rows) else "page rows"
                extra = f", {t.anonymized} anonymized skipped" if t.anonymized else ""
                click.echo(
                    f"revprompt: {t.name}: {len(t.rows):,} {kind} ({gsc.FORMATS[t.format]}; "
                    f"{t.source_rows:,} source rows{extra})",
                    err=True,
                )
            if replaced:
                click.echo(f"revprompt: replaced {replaced:,} rows of an earlier import of {path}", err=True)
            if not any(t.pairs for t in tables):
                click.echo(
                    "revprompt: note: no query x page pairs in this export: `match --from-gsc` can match its "
                    "queries but not compare them with the pages Google shows",
                    err=True,
                )
    click.echo(f"revprompt: stored in {db} (table gsc_rows); next: revprompt match --from-gsc --db {db}", err=True)


@hookimpl
def register_commands(cli):
    cli.add_command(match_command)
    cli.add_command(gsc_group)
