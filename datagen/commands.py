"""`revprompt datagen ...`: thin click commands over the datagen library, registered through the plugin hook."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from ..core.cli_options import db_option
from ..core.errors import UserError
from ..core.hookspecs import hookimpl
from .categories import BY_KEY, CATEGORIES

CATEGORY_CHOICE = click.Choice([c.key for c in CATEGORIES])


@hookimpl
def register_commands(cli):
    cli.add_command(datagen_group)


@click.group("datagen")
def datagen_group():
    """Build (prompt, response) training pairs: generate them with Gemini, or import existing sets.

    \b
    The usual pipeline (API key from GOOGLE_API_KEY, else GEMINI_API_KEY, else ~/.config/revprompt/config.toml):
      revprompt datagen prompts --per-category 2000      # stage 1: 10,000 prompts in 5 categories
      revprompt datagen responses                        # stage 2: Gemini answers each prompt
      revprompt datagen import alpaca.json sharegpt.json # optional: add existing pairs
      revprompt datagen export data/                     # data/train.jsonl + data/dev.jsonl
      revprompt datagen status                           # what is stored, what is missing

    Every stage is resumable: killed or interrupted, the same command continues where it stopped.
    Everything is stored in the DuckDB file given by --db (tables datagen_prompts, datagen_pairs,
    datagen_batches, datagen_errors), so `revprompt sql` can query it.
    """


_db_option = db_option(help_text="DuckDB file to store pairs in.")


def _gemini_options(func):
    """Options shared by the two Gemini stages."""
    options = [
        click.option(
            "--model", default=None, help="Gemini model [default: gemini-2.5-flash, or `model` in the config]."
        ),
        click.option(
            "--base-url",
            default=None,
            metavar="URL",
            help="API endpoint, e.g. a proxy [env REVPROMPT_GEMINI_BASE_URL].",
        ),
        click.option(
            "--vertexai/--gemini-api",
            "vertexai",
            default=None,
            help="Use Vertex AI (GOOGLE_CLOUD_PROJECT/LOCATION) instead of the Gemini API key.",
        ),
        click.option(
            "--concurrency",
            default=100,
            show_default=True,
            type=click.IntRange(1, 1000),
            help="Calls in flight at once.",
        ),
        click.option(
            "--max-attempts",
            default=8,
            show_default=True,
            type=click.IntRange(1, 100),
            help="Tries per call before it is left for a re-run (429s, 5xx, malformed answers).",
        ),
        click.option(
            "--backoff",
            default=1.0,
            show_default=True,
            type=click.FloatRange(0),
            help="First retry delay in seconds; doubles on each retry, at most 60 s.",
        ),
        click.option(
            "--timeout",
            default=None,
            type=click.FloatRange(1),
            help="Seconds before one call is abandoned and retried [default: 300].",
        ),
        click.option("--price-in", type=float, default=None, help="USD per million input tokens, for the estimate."),
        click.option("--price-out", type=float, default=None, help="USD per million output tokens, for the estimate."),
        click.option("--estimate", "estimate_only", is_flag=True, help="Print the cost/size estimate and stop."),
        click.option("-y", "--yes", is_flag=True, help="Start a big run without asking."),
        click.option("--no-progress", is_flag=True, help="No progress bar on stderr."),
        _db_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _settings(model, base_url, vertexai, timeout):
    from .settings import GeminiSettings

    settings = GeminiSettings.resolve(model=model, base_url=base_url, vertexai=vertexai, timeout_s=timeout)
    if settings.key_note:
        click.echo(f"note: {settings.key_note}", err=True)
    return settings


def _thinking_note(model, budget=None, level=None) -> None:
    """Say when the model cannot take the thinking asked for (e.g. 2.5 Pro cannot turn it off) and what is sent."""
    from .thinking import plan_thinking

    note = plan_thinking(model, budget, level).note
    if note:
        click.echo(f"note: {note}", err=True)


def _price(model, price_in, price_out, batch: bool = False):
    from .estimate import BATCH_PRICE_FACTOR, price_for

    price = price_for(model, price_in, price_out)
    if price is not None and batch:
        price = (price[0] * BATCH_PRICE_FACTOR, price[1] * BATCH_PRICE_FACTOR)
    return price


def _echo_spent(counters, model, price_in, price_out, batch: bool = False) -> None:
    from .estimate import price_for, spent_line

    click.echo(
        spent_line(
            counters.input_tokens,
            counters.output_tokens,
            counters.wasted_tokens,
            model,
            price_for(model, price_in, price_out),
            batch,
        )
    )


def _confirm_estimate(estimate, yes: bool, estimate_only: bool) -> bool:
    """Show the estimate; False when the run should not start."""
    click.echo(estimate.describe(), err=True)
    if estimate_only or estimate.calls == 0:
        return False
    if estimate.needs_confirmation and not yes:
        if not sys.stdin.isatty():
            raise UserError("this is a big run (see the estimate above); pass --yes to start it", exit_code=1)
        click.confirm("Start?", abort=True, err=True)
    return True


def _gemini_errors(func):
    """A fatal API error (bad key, unknown model) ends the command as one line, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from .gemini import FatalError

        try:
            return func(*args, **kwargs)
        except FatalError as exc:
            raise UserError(f"Gemini: {exc.detail}", exit_code=1) from None

    return wrapper


def _open_tables(db):
    from ..core.store import Store
    from .tables import DatagenTables

    store = Store(db)
    return store, DatagenTables(store)


@datagen_group.command("prompts")
@click.option(
    "-n",
    "--per-category",
    default=1000,
    show_default=True,
    type=click.IntRange(1),
    help="Unique prompts wanted in each category (the total to reach, not to add).",
)
@click.option(
    "-c",
    "--category",
    "categories",
    multiple=True,
    type=CATEGORY_CHOICE,
    help="Only these categories (repeatable) [default: all five].",
)
@click.option(
    "--batch-size", default=100, show_default=True, type=click.IntRange(1, 100), help="Prompts asked for in one call."
)
@click.option("--temperature", default=1.0, show_default=True, type=click.FloatRange(0, 2))
@click.option(
    "--topics",
    "topics_file",
    type=click.Path(exists=True, dir_okay=False),
    help="File of topic areas, one a line, rotated across batches [default: 60 built-in areas].",
)
@click.option(
    "--batch",
    "use_batch",
    is_flag=True,
    help="Use the Gemini Batch API: half price, answers within hours. Resumable: a re-run picks up the submitted jobs.",
)
@click.option(
    "--poll",
    "poll_s",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0.01),
    help="Seconds between checks on a --batch job.",
)
@_gemini_options
@_gemini_errors
def prompts_command(
    per_category,
    categories,
    batch_size,
    temperature,
    topics_file,
    use_batch,
    poll_s,
    model,
    base_url,
    vertexai,
    concurrency,
    max_attempts,
    backoff,
    timeout,
    price_in,
    price_out,
    estimate_only,
    yes,
    no_progress,
    db,
):
    """Stage 1: have Gemini write user prompts, PER-CATEGORY unique ones in each of five categories.

    \b
    Categories:
      mid_tail_query   mid-tail search query ("best budget espresso machine")
      long_tail_query  long-tail multi-faceted search query
      simple_prompt    simple single-faceted prompt
      typical_prompt   typical prompt (a request with a little context)
      detailed_prompt  detailed multi-faceted prompt

    Each call asks for up to 100 prompts as JSON (response schema, thinking off); answers that are not
    valid JSON are rejected, logged in datagen_errors and asked again. Duplicates (ignoring case, spacing
    and end punctuation) are dropped, and short categories are topped up. Re-running continues where a
    killed run stopped; raising --per-category later adds only the difference.

    With --batch the calls go to the Gemini Batch API as jobs (half price; answers within hours). The job
    names are stored in datagen_batch_jobs as soon as they exist, so an interrupted run is resumed by running
    the same command: it collects the earlier jobs before it submits anything new.

    \b
    Examples:
      revprompt datagen prompts --per-category 2000 --estimate   # what it would cost
      revprompt datagen prompts --per-category 2000 --yes
      revprompt datagen prompts -n 500 -c typical_prompt -c detailed_prompt --concurrency 20
      revprompt datagen prompts --per-category 2000 --batch --yes
    """
    from .gemini import Backoff
    from .stage_prompts import PromptOptions, estimate, generate_prompts

    settings = _settings(model, base_url, vertexai, timeout)
    _thinking_note(settings.model)
    opts = PromptOptions(
        per_category=per_category,
        categories=list(categories) or list(BY_KEY),
        batch_size=batch_size,
        concurrency=concurrency,
        temperature=temperature,
        show_progress=not no_progress,
        batch=use_batch,
        poll_s=poll_s,
    )
    if topics_file:
        topics = [t.strip() for t in Path(topics_file).read_text(encoding="utf-8").splitlines() if t.strip()]
        if not topics:
            raise UserError(f"{topics_file} lists no topics")
        opts.topics = topics
    store, tables = _open_tables(db)
    with store:
        est = estimate(tables, opts, settings.model, _price(settings.model, price_in, price_out, use_batch))
        open_jobs = tables.open_batch_jobs("prompts") if use_batch else []
        if open_jobs:
            click.echo(f"{len(open_jobs)} batch job(s) of an earlier run are still to be collected", err=True)
        if not _confirm_estimate(est, yes, estimate_only) and (estimate_only or not open_jobs):
            if est.calls == 0 and not estimate_only:
                click.echo("nothing to do: every category already has its prompts")
            return
        report = generate_prompts(tables, settings, opts, Backoff(backoff, 60.0, max_attempts))
    c = report.counters
    click.echo(
        f"prompts: {report.prompts_added} new from {report.batches_done} calls "
        f"({report.duplicates_dropped} duplicates dropped, {report.batches_skipped} batches already done); "
        f"retries: {c.rate_limited} rate-limited, {c.server_errors} server errors, {c.network_errors} network, "
        f"{c.rejected} rejected answers"
    )
    _echo_spent(c, settings.model, price_in, price_out, use_batch)
    click.echo("per category: " + ", ".join(f"{k} {n}/{per_category}" for k, n in report.counts.items()))
    if report.batches_failed:
        raise UserError(
            f"{report.batches_failed} calls failed after retries (see datagen_errors); re-run the same command "
            f"to retry them",
            exit_code=1,
        )


@datagen_group.command("responses")
@click.option(
    "-c",
    "--category",
    "categories",
    multiple=True,
    type=CATEGORY_CHOICE,
    help="Only prompts of these categories (repeatable).",
)
@click.option("--limit", type=click.IntRange(1), default=None, help="Answer at most this many prompts this run.")
@click.option(
    "--thinking-budget",
    default=None,
    type=click.IntRange(-1),
    help="Thinking tokens per answer (Gemini 2.5): 0 off, -1 the model decides [default: as little as "
    "the model allows: off on Flash, 128 on 2.5 Pro, the lowest level on Gemini 3].",
)
@click.option(
    "--thinking-level",
    default=None,
    type=click.Choice(["minimal", "low", "medium", "high"], case_sensitive=False),
    help="Thinking level, for Gemini 3 models (they take no budget).",
)
@click.option(
    "--batch",
    "use_batch",
    is_flag=True,
    help="Use the Gemini Batch API: half price, answers within hours. Resumable: a re-run picks up the submitted jobs.",
)
@click.option(
    "--poll",
    "poll_s",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0.01),
    help="Seconds between checks on a --batch job.",
)
@click.option(
    "--max-output-tokens",
    default=2048,
    show_default=True,
    type=click.IntRange(1),
    help="Longest answer in tokens (training caps sequences at 2,048).",
)
@click.option("--temperature", default=None, type=click.FloatRange(0, 2), help="[default: the model's]")
@click.option("--retry-failed", is_flag=True, help="Ask again for prompts that failed for good (e.g. blocked).")
@_gemini_options
@_gemini_errors
def responses_command(
    categories,
    limit,
    thinking_budget,
    thinking_level,
    use_batch,
    poll_s,
    max_output_tokens,
    temperature,
    retry_failed,
    model,
    base_url,
    vertexai,
    concurrency,
    max_attempts,
    backoff,
    timeout,
    price_in,
    price_out,
    estimate_only,
    yes,
    no_progress,
    db,
):
    """Stage 2: have Gemini answer every stored prompt that has no answer yet.

    Answers are stored as pairs in datagen_pairs, committed every second, so a killed run loses at most the
    calls in flight and about a second of answers; the same command continues with the rest. Answers cut short (finish reason other
    than STOP) are kept but left out of `datagen export` unless --include-incomplete.

    \b
    Thinking is kept as low as the model allows unless asked for: off on 2.5 Flash/Flash-Lite, a 128-token
    budget on 2.5 Pro (it cannot turn thinking off), the lowest --thinking-level on Gemini 3.

    With --batch the prompts go to the Gemini Batch API as jobs (half price; answers within hours). The job
    names are stored in datagen_batch_jobs as soon as they exist, so an interrupted run is resumed by running
    the same command: it collects the earlier jobs instead of submitting them again.

    \b
    Examples:
      revprompt datagen responses --estimate
      revprompt datagen responses --yes --concurrency 50
      revprompt datagen responses -c detailed_prompt --limit 100 --thinking-budget 512
      revprompt datagen responses --model gemini-3-flash-preview --thinking-level low
      revprompt datagen responses --batch --yes
    """
    from .gemini import Backoff
    from .stage_responses import ResponseOptions, estimate, generate_responses

    settings = _settings(model, base_url, vertexai, timeout)
    _thinking_note(settings.model, thinking_budget, thinking_level)
    opts = ResponseOptions(
        categories=list(categories),
        limit=limit,
        concurrency=concurrency,
        thinking_budget=thinking_budget,
        thinking_level=thinking_level,
        batch=use_batch,
        poll_s=poll_s,
        max_output_tokens=max_output_tokens,
        temperature=temperature,
        retry_failed=retry_failed,
        show_progress=not no_progress,
    )
    store, tables = _open_tables(db)
    with store:
        est = estimate(tables, opts, settings.model, _price(settings.model, price_in, price_out, use_batch))
        open_jobs = tables.open_batch_jobs("responses") if use_batch else []
        if open_jobs:
            click.echo(f"{len(open_jobs)} batch job(s) of an earlier run are still to be collected", err=True)
        if not _confirm_estimate(est, yes, estimate_only) and (estimate_only or not open_jobs):
            if est.calls == 0 and not estimate_only:
                click.echo("nothing to do: every prompt has an answer (run `datagen prompts` first?)")
            return
        report = generate_responses(tables, settings, opts, Backoff(backoff, 60.0, max_attempts))
    c = report.counters
    click.echo(
        f"responses: {report.answered} answered ({report.already_answered} before this run), "
        f"{report.failed} failed, {report.failed_for_good} failed for good; retries: {c.rate_limited} rate-limited, "
        f"{c.server_errors} server errors, {c.network_errors} network, {c.rejected} rejected answers; "
        f"{report.still_pending} prompts still unanswered"
    )
    _echo_spent(c, settings.model, price_in, price_out, use_batch)
    if report.failed:
        raise UserError(
            f"{report.failed} prompts failed after retries (see datagen_errors); re-run the same command to retry them",
            exit_code=1,
        )


@datagen_group.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "pairs", "alpaca", "sharegpt", "fastchat"]),
    default="auto",
    show_default=True,
    help="Record shape; auto looks at the first record.",
)
@click.option(
    "--questions",
    "question_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="FastChat question file(s) the answers' question_id refers to (repeatable; the first to name an id wins).",
)
@click.option(
    "--prompt-field",
    default="prompt",
    show_default=True,
    help="Prompt field for the pairs shape; dotted paths reach into nested objects (a.b.0.c).",
)
@click.option("--response-field", default="response", show_default=True, help="Response field for the pairs shape.")
@click.option("--source", default=None, help="Label stored with each pair [default: the file name without extension].")
@click.option("--model", default=None, help="Model that wrote the responses [default: each record's `model` field].")
@_db_option
def import_command(files, fmt, prompt_field, response_field, source, model, question_files, db):
    """Import existing (prompt, response) pairs from JSON or JSONL FILES into datagen_pairs.

    \b
    Shapes:
      pairs     {"prompt": ..., "response": ...}   (field names set by --prompt-field/--response-field)
      alpaca    {"instruction", "input", "output"}  (prompt = instruction + blank line + input)
      sharegpt  {"conversations": [{"from": "human", "value"}, {"from": "gpt", "value"}]}
                or {"messages": [{"role": "user", "content"}, ...]}: the first exchange only
      fastchat  MT-bench / Arena-Hard answers {"question_id", "model_id", "choices": [{"turns"}]},
                joined by question_id to --questions question.jsonl: the first turn only

    Pairs already stored (same prompt and response) are skipped, so importing a file twice is harmless.

    \b
    Examples:
      revprompt datagen import ../shared/data/train/*.jsonl
      revprompt datagen import alpaca_data.json --format alpaca --source alpaca52k
      revprompt datagen import qa.jsonl --prompt-field question --response-field answer.text
      revprompt datagen import model_answer/gpt-4-0314.jsonl --questions question.jsonl
    """
    from .importers import import_file, load_fastchat_questions

    if question_files and fmt not in ("auto", "fastchat"):
        raise UserError(f"--questions is for FastChat answer files, not the {fmt} shape")
    questions = load_fastchat_questions(question_files) if question_files else None
    store, tables = _open_tables(db)
    with store:
        for path in files:
            report = import_file(tables, path, fmt, prompt_field, response_field, source, model, questions=questions)
            line = (
                f"{path}: {report.added} pairs added ({report.shape} shape), {report.duplicates} duplicates, "
                f"{report.skipped} skipped"
            )
            click.echo(line)
            for example in report.skip_examples:
                click.echo(f"  skipped {example}", err=True)


@datagen_group.command("export")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option(
    "--dev-fraction",
    default=0.02,
    show_default=True,
    type=float,
    help="Share of prompts held out in dev.jsonl (0 for none).",
)
@click.option("--seed", default=0, show_default=True, help="Changes which prompts land in dev.")
@click.option("--source", "sources", multiple=True, help="Only pairs from this source (repeatable), e.g. gemini.")
@click.option("-c", "--category", "categories", multiple=True, type=CATEGORY_CHOICE, help="Only these categories.")
@click.option("--include-incomplete", is_flag=True, help="Also answers cut short (MAX_TOKENS, SAFETY, ...).")
@_db_option
def export_command(out_dir, dev_fraction, seed, sources, categories, include_incomplete, db):
    """Write the stored pairs to OUT_DIR/train.jsonl and OUT_DIR/dev.jsonl, the files training reads.

    One JSON object a line: {"id", "prompt", "response", "source", "category", "model"}. The split is by
    prompt, so one prompt never lands in both files, and it is stable as the table grows.

    \b
    Examples:
      revprompt datagen export data/
      revprompt datagen export data/ --source gemini --dev-fraction 0.05
      revprompt train data/train.jsonl -o runs/my-adapter
    """
    from .export import export_pairs

    if not Path(db).exists():
        raise UserError(f"no database at {db} (run `revprompt datagen prompts` or `datagen import` first)")
    store, tables = _open_tables(db)  # read-write: creates the datagen tables when only core ones exist
    with store:
        report = export_pairs(tables, out_dir, dev_fraction, seed, sources, categories, include_incomplete)
    click.echo(f"{report.train_path}: {report.train} pairs")
    click.echo(f"{report.dev_path}: {report.dev} pairs")


@datagen_group.command("doc-pages")
@click.argument("sites", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="JSONL to write.")
@click.option(
    "--name",
    "names",
    multiple=True,
    metavar="FOLDER=NAME",
    help="How prompts name a site's project (repeatable) [default: the folder's name].",
)
@click.option("--seed", default=0, show_default=True, help="Changes which template phrases each prompt.")
@click.option(
    "--max-sections", default=3, show_default=True, help="Pairs from a page's first N `## ` sections too (0: none)."
)
def doc_pages_command(sites, out, names, seed, max_sections):
    """Page-like pairs from built documentation SITES (folders of HTML pages), no generator needed.

    Each page is read as revprompt reads any web page, its title heading removed; the prompt is a request
    for the page's topic, built from its title by one of a few templates (and the same for its first
    sections, with their headings). Pages such as the index, search and changelogs are skipped, and pairs
    whose text starts like an earlier one are dropped. Writes {"prompt", "response", "source", "title",
    "file", "kind": "page"} a line: train on it beside chat pairs (`revprompt train`, `revprompt pack-bundle`);
    page pairs are trained with their own separator, which the adapter records and the engine then uses
    for web pages only, so chat responses keep their chat prompts.

    \b
    Examples:
      revprompt datagen doc-pages html/flask html/django -o runs/docs.jsonl --name flask=Flask --name django=Django
      scripts/build_doc_sites.sh      # how the committed recipe built its sites (docs/model.md)
    """
    from .doc_pages import dedup, pairs_from_site, write_pairs

    display = {}
    for item in names:
        folder, sep, name = item.partition("=")
        if not sep or not folder or not name:
            raise UserError(f"--name expects FOLDER=NAME, got {item!r}")
        display[folder] = name
    pairs = []
    with click.progressbar(sites, label="sites", file=sys.stderr, show_pos=True) as bar:
        for site in bar:
            pairs += pairs_from_site(site, display.get(site.name, site.name), seed, max_sections)
    kept = dedup(pairs)
    write_pairs(kept, out)
    click.echo(f"{out}: {len(kept)} pairs from {len(sites)} sites ({len(pairs) - len(kept)} repeated starts dropped)")


@datagen_group.command("markdown-site")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "-o", "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder of HTML to write."
)
@click.option("--exclude", multiple=True, metavar="FOLDER", help="A folder under SRC to leave out (repeatable).")
def markdown_site_command(src, out, exclude):
    """Render a Markdown documentation source (MkDocs, Hugo, Docusaurus, VitePress, Jekyll, Obsidian) to HTML.

    Each page's title comes from its front matter or first `# ` heading; the generator's own syntax
    (front matter, MDX imports, shortcodes, Liquid tags, `:::` containers) is dropped and the rest rendered
    as CommonMark, so `revprompt datagen doc-pages` can read the folder as it reads a built site.

    \b
    Example:
      revprompt datagen markdown-site repo/docs/en/docs -o html/FastAPI --exclude release-notes
      revprompt datagen doc-pages html/FastAPI -o runs/docs-md.jsonl
      scripts/build_markdown_sites.sh     # the committed recipe (docs/model.md)
    """
    from .markdown_site import render_site

    n = render_site(src, out, exclude)
    click.echo(f"{out}: {n} pages")


@datagen_group.command("page-requests")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="JSONL to write.")
def page_requests_command(files, out):
    """Chat pairs that read as a web page and the request behind it, written as page pairs.

    Picks from FILES (JSONL pairs) those whose prompt is one short line asking for writing on a topic
    ("Write a blog post about ...", "Explain ...", "What is ...") that points at nothing outside the page
    (no "the following text", no "my"/"you") and whose response is long-form, and writes them with
    "kind": "page", so that training reads them after the page separator, as the engine reads web pages.
    Train on the output beside the chat pairs it came from.

    \b
    Example:
      revprompt datagen page-requests ../shared/data/train/sharegpt.jsonl -o runs/page-requests.jsonl
    """
    import json
    from dataclasses import asdict

    from ..training.data import read_pairs
    from .page_requests import page_requests

    pairs = read_pairs(files)
    kept = list(page_requests(pairs))
    with out.open("w", encoding="utf-8") as fh:
        for pair in kept:
            fh.write(json.dumps(asdict(pair), ensure_ascii=False) + "\n")
    click.echo(f"{out}: {len(kept)} page pairs of {len(pairs)} read")


@datagen_group.command("status")
@_db_option
def status_command(db):
    """Show what datagen has stored: prompts per category, pairs per source, failures, tokens used.

    \b
    Example:
      revprompt datagen status --db runs/datagen.duckdb
    """
    if not Path(db).exists():
        raise UserError(f"no database at {db}")
    store, tables = _open_tables(db)
    with store:
        s = tables.summary()
    click.echo("prompts by category:")
    for category, n in s["prompts_by_category"] or [("(none)", 0)]:
        click.echo(f"  {category or '(none)'}: {n}")
    n_batches, b_in, b_out = s["batches"]
    click.echo(f"stage-1 calls stored: {n_batches} ({b_in:,} input / {b_out:,} output tokens)")
    click.echo("pairs by source:")
    for source, n, incomplete in s["pairs_by_source"] or [("(none)", 0, 0)]:
        click.echo(f"  {source}: {n}" + (f" ({incomplete} cut short)" if incomplete else ""))
    r_in, r_out = s["response_tokens"]
    click.echo(f"stage-2 tokens: {r_in:,} input / {r_out:,} output")
    click.echo(f"prompts without an answer: {s['unanswered']} ({s['failed_for_good']} failed for good)")
    if s["errors_by_kind"]:
        click.echo("errors logged: " + ", ".join(f"{stage}/{kind} {n}" for stage, kind, n in s["errors_by_kind"]))
