"""`revprompt eval`: score a model's reconstructed prompts against the true ones, next to the baseline."""

from __future__ import annotations

import json

import click

from ..core.cli_options import beams_option, rerank_option

METRIC_LABELS = {
    "cosine": ("cosine (MiniLM)", "{:.3f}"),
    "bleu": ("BLEU", "{:.2f}"),
    "token_f1": ("token F1", "{:.3f}"),
    "exact_match": ("exact match", "{:.3f}"),
}


@click.command("eval")
@click.argument("pairs_file", metavar="[PAIRS]", required=False)
@click.option(
    "--pages",
    "pages_index",
    type=click.Path(dir_okay=False),
    default=None,
    help="Web-page yardstick instead: an index JSONL of saved pages (file, title), "
    "e.g. ../shared/data/web/index.jsonl.",
)
@click.option(
    "--model",
    default=None,
    envvar="REVPROMPT_MODEL",
    help="'base', a local model or PEFT adapter directory, or a Hugging Face id. Default: the shipped model.",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate only the first N pairs.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--details",
    "details_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write one JSONL row per pair as it finishes; re-running with the same file resumes.",
)
@click.option(
    "--top",
    "top_n",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Ranked candidates kept per response; best-of is over these.",
)
@click.option("--max-new-tokens", default=48, show_default=True, help="Longest prompt the decoder may write.")
@click.option(
    "--max-input-tokens",
    type=int,
    default=None,
    help="Longer responses are truncated to this many tokens (default: the model's trained length).",
)
@click.option(
    "--dtype",
    type=click.Choice(["auto", "float32", "bfloat16"]),
    default="auto",
    show_default=True,
    help="auto: bfloat16 where the CPU/GPU computes it natively, else float32 (with fp16 batch weights on "
    "AVX2-only CPUs); float32: exact fp32 weights throughout.",
)
@click.option(
    "--keep-page-junk",
    is_flag=True,
    help="Rank by perplexity alone: don't move candidates that copy the page (or name a URL, code fence "
    "or language it lacks) to the end. For measuring what that demotion is worth.",
)
@rerank_option
@beams_option
def eval_command(
    pairs_file,
    pages_index,
    model,
    limit,
    as_json,
    details_file,
    top_n,
    max_new_tokens,
    max_input_tokens,
    dtype,
    keep_page_junk,
    rerank,
    beams,
):
    """Run the engine on each response in PAIRS and score its prompts against the true ones.

    \b
    PAIRS: a JSONL file with "prompt" and "response" fields (e.g. ../shared/data/dev/dev100.jsonl).
    Reports the mean over pairs of top-1 (rank-1 candidate) and best-of-N (best kept candidate, each metric
    on its own) for: cosine similarity of MiniLM embeddings, sentence BLEU, token-set F1 and exact match;
    next to the baseline of using the response's first sentence as the prompt, and seconds per document.

    \b
    Examples:
      revprompt eval ../shared/data/dev/dev100.jsonl --model runs/my-adapter/adapter
      revprompt eval dev600.jsonl --limit 50 --json
      revprompt eval dev600.jsonl --details runs/eval-dev600.jsonl   (re-run the same command to resume)

    \b
    With --pages, real web pages stand in for pairs: for each page's top-1 candidate it reports the junk rate
    (template markers, repeats, URLs or code fences the page lacks, programming languages the page never
    names, long verbatim copies, fewer than 3 or more than 60 words) with counts per reason, and, with the
    title heading removed from the page, the MiniLM cosine of top-1 to the title against the first sentence's.
      revprompt eval --pages ../shared/data/web/index.jsonl --details runs/web.jsonl
    """
    from ..core.cli_options import load_engine
    from ..core.errors import UserError

    if bool(pairs_file) == bool(pages_index):
        raise click.UsageError("give either PAIRS or --pages INDEX")

    def make_engine():
        return load_engine(
            model,
            dtype=dtype,
            top_n=top_n,
            max_new_tokens=max_new_tokens,
            max_input_tokens=max_input_tokens,
            demote_page_junk=not keep_page_junk,
            rerank=rerank,
            beams=beams,
        )

    if pages_index:
        from .web_eval import evaluate_pages, read_pages

        try:
            pages = read_pages(pages_index, limit=limit)
        except UserError as exc:
            raise click.ClickException(str(exc)) from None
        summary = evaluate_pages(make_engine, pages, details=details_file).summary()
        if as_json:
            click.echo(json.dumps(summary, indent=2))
        else:
            print_web_summary(summary)
        return

    from .data import read_pairs
    from .evaluate import evaluate

    pairs = read_pairs([pairs_file])

    report = evaluate(make_engine, pairs, limit=limit, progress=True, top=top_n, details=details_file)
    summary = report.summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        print_summary(summary)
    if details_file and not as_json:
        click.echo(
            f"revprompt: per-pair rows in {details_file}"
            + (f" ({report.resumed} from an earlier run)" if report.resumed else ""),
            err=True,
        )


def print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    best = f"best_of_{summary['top']}"
    per_doc = summary["seconds_per_doc"]
    table = Table(
        title=f"{summary['model']}: {summary['pairs']} pairs, {per_doc:.2f} s/doc"
        if per_doc is not None
        else f"{summary['model']}: no pairs"
    )
    table.add_column("metric")
    for label in ("top-1", f"best-of-{summary['top']}", "baseline (1st sentence)"):
        table.add_column(label, justify="right")
    for metric, values in summary["metrics"].items():
        label, fmt = METRIC_LABELS.get(metric, (metric, "{:.3f}"))
        table.add_row(label, *("-" if values[k] is None else fmt.format(values[k]) for k in ("top1", best, "baseline")))
    Console().print(table)
    if summary.get("by_source"):
        parts = Table(title="by source (top-1 / first sentence)")
        for label in ("source", "pairs", "cosine", "token F1"):
            parts.add_column(label, justify="left" if label == "source" else "right")
        for source, part in summary["by_source"].items():
            m = part["metrics"]
            parts.add_row(
                source,
                str(part["pairs"]),
                *(f"{m[k]['top1']:.3f} / {m[k]['baseline']:.3f}" for k in ("cosine", "token_f1")),
            )
        Console().print(parts)
    if summary.get("truncated"):
        Console(stderr=True).print(f"[dim]{summary['truncated']} responses were truncated to the input window[/dim]")


def print_web_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    n = summary["pages"]
    table = Table(title=f"{summary['model']}: {n} web pages, top-1 candidate")
    table.add_column("measure")
    table.add_column("value", justify="right")
    if n:
        table.add_row("junk rate", f"{summary['junk_rate']:.1%} ({summary['junk_pages']} pages)")
        for reason, count in summary["junk_by_reason"].items():
            if count:
                table.add_row(f"  {reason}", str(count))
        table.add_row("title cosine, top-1", f"{summary['title_cosine_top1']:.3f}")
        table.add_row("title cosine, first sentence", f"{summary['title_cosine_first_sentence']:.3f}")
        table.add_row("margin", f"{summary['title_cosine_margin']:+.3f}")
        table.add_row("title cosine, best of the kept candidates", f"{summary['title_cosine_best_of']:.3f}")
        table.add_row("degenerate candidates dropped / page", f"{summary['dropped_degenerate_per_page']:.2f}")
        table.add_row("page-junk candidates ranked last / page", f"{summary['demoted_page_junk_per_page']:.2f}")
    console.print(table)
