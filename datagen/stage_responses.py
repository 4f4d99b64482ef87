"""Stage 2: have Gemini answer every stored prompt that has no answer yet, resumable.

The work list is a query ("prompts without a pair"), and answers are committed in small batches (every 100
answers or every second, whichever comes first), so a kill loses at most about a second of answers and a
re-run asks only for what is missing. Prompts that fail for good (blocked, invalid) are recorded and
skipped by later runs unless --retry-failed asks again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from .estimate import Estimate, estimate_response_stage
from .gemini import Backoff, CallCounters, CallProblem, GeminiCaller, PermanentFailure, RetriesExhausted, parse_answer
from .pool import RunProgress, run_pool
from .settings import GeminiSettings
from .tables import DatagenTables, PendingPrompt
from .thinking import plan_thinking

log = logging.getLogger("revprompt.datagen")

FLUSH_ROWS = 100
FLUSH_SECONDS = 1.0


@dataclass
class ResponseOptions:
    categories: Sequence[str] = ()
    limit: int | None = None
    concurrency: int = 100
    # None: as little thinking as the model allows (see thinking.py); -1 lets it decide; Gemini 3 takes a level.
    thinking_budget: int | None = None
    thinking_level: str | None = None
    max_output_tokens: int | None = 2048
    temperature: float | None = None
    retry_failed: bool = False
    show_progress: bool = True
    batch: bool = False  # through the Batch API (half price, answered within hours): see batch.py
    poll_s: float = 30.0


@dataclass
class ResponseStageReport:
    answered: int = 0
    failed: int = 0
    failed_for_good: int = 0
    already_answered: int = 0
    still_pending: int = 0
    counters: CallCounters = field(default_factory=CallCounters)


def pending(tables: DatagenTables, opts: ResponseOptions) -> list[PendingPrompt]:
    return tables.pending_prompts(opts.categories or None, opts.limit, opts.retry_failed)


def estimate(tables: DatagenTables, opts: ResponseOptions, model: str, price) -> Estimate:
    thinking = plan_thinking(model, opts.thinking_budget, opts.thinking_level)
    return estimate_response_stage(
        (len(p.prompt) for p in pending(tables, opts)),
        model,
        price,
        opts.max_output_tokens,
        thinking.estimated_tokens,
    )


def generation_config(opts: ResponseOptions, model: str):
    from google.genai import types

    return types.GenerateContentConfig(
        temperature=opts.temperature,
        max_output_tokens=opts.max_output_tokens,
        thinking_config=plan_thinking(model, opts.thinking_budget, opts.thinking_level).config(),
    )


def generate_responses(
    tables: DatagenTables, settings: GeminiSettings, opts: ResponseOptions, backoff: Backoff | None = None
) -> ResponseStageReport:
    report = ResponseStageReport()
    report.already_answered = tables.store.execute("SELECT count(*) FROM datagen_pairs WHERE prompt_id IS NOT NULL")[0][
        0
    ]
    if opts.batch:
        asyncio.run(_run_batch(tables, settings, opts, backoff or Backoff(), report))
    else:
        jobs = pending(tables, opts)
        if jobs:
            asyncio.run(_run(tables, settings, opts, backoff or Backoff(), jobs, report))
    report.still_pending = tables.pending_count(opts.categories or None, retry_failed=False)
    return report


class AnswerBuffer:
    """Collects answers and commits them together: one DuckDB commit per answer would throttle the run."""

    def __init__(self, tables: DatagenTables, max_rows: int = FLUSH_ROWS):
        self.tables = tables
        self.max_rows = max_rows
        self.rows: list = []

    def add(self, row) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.max_rows:
            self.flush()

    def flush(self) -> None:
        rows, self.rows = self.rows, []
        self.tables.save_responses(rows)

    async def flush_periodically(self, every_s: float = FLUSH_SECONDS) -> None:
        while True:
            await asyncio.sleep(every_s)
            self.flush()


async def _run(
    tables: DatagenTables,
    settings: GeminiSettings,
    opts: ResponseOptions,
    backoff: Backoff,
    jobs: list[PendingPrompt],
    report: ResponseStageReport,
) -> None:
    client = settings.make_client()
    caller = GeminiCaller(client, settings, backoff)
    report.counters = caller.counters
    config = generation_config(opts, settings.model)
    buffer = AnswerBuffer(tables)
    flusher = asyncio.create_task(buffer.flush_periodically())
    try:
        with RunProgress("responses", len(jobs), caller.counters, opts.show_progress) as progress:
            await run_pool(
                jobs,
                lambda p: _answer(tables, caller, settings, config, p, buffer, report),
                opts.concurrency,
                progress,
            )
    finally:
        flusher.cancel()
        buffer.flush()  # also on Ctrl-C or a fatal error: what has arrived is kept
        await client.aio.aclose()


async def _answer(
    tables: DatagenTables,
    caller: GeminiCaller,
    settings: GeminiSettings,
    config,
    prompt: PendingPrompt,
    buffer: AnswerBuffer,
    report: ResponseStageReport,
) -> bool:
    def on_problem(problem: CallProblem, will_retry: bool) -> None:
        if problem.kind == "empty":
            log.warning("rejected answer to prompt %d: %s", prompt.prompt_id, problem.detail)
            tables.log_error("responses", problem.kind, problem.detail, prompt.category, prompt_id=prompt.prompt_id)

    try:
        result = await caller.generate(prompt.prompt, config, parse_answer, on_problem)
    except PermanentFailure as exc:
        log.warning("prompt %d failed for good: %s", prompt.prompt_id, exc.detail)
        tables.log_error("responses", exc.kind, exc.detail, prompt.category, prompt_id=prompt.prompt_id, permanent=True)
        report.failed_for_good += 1
        return False
    except RetriesExhausted as exc:
        log.warning("prompt %d failed: %s", prompt.prompt_id, exc.detail)
        tables.log_error("responses", exc.kind, exc.detail, prompt.category, prompt_id=prompt.prompt_id)
        report.failed += 1
        return False
    text, finish_reason = result.value
    buffer.add((prompt, text, settings.model, finish_reason, result.usage))
    report.answered += 1
    return True


# Rounds of --batch: a round re-asks only what the one before got back rejected or with an error.
MAX_BATCH_ROUNDS = 3


async def _run_batch(
    tables: DatagenTables,
    settings: GeminiSettings,
    opts: ResponseOptions,
    backoff: Backoff,
    report: ResponseStageReport,
) -> None:
    """Stage 2 through the Batch API: jobs from an earlier run first, then new jobs for what is still missing."""
    from .batch import BatchRequest, BatchRunner
    from .gemini import Rejected, usage_of

    client = settings.make_client()
    counters = report.counters
    runner = BatchRunner(client, tables, settings, "responses", counters, backoff, opts.poll_s, _notify)
    config = generation_config(opts, settings.model)
    buffer = AnswerBuffer(tables)
    failed: set[int] = set()
    retry: set[int] = set()

    def handle(key: str, model: str, item) -> None:
        prompt_id = int(key.removeprefix("p"))
        prompt = tables.prompts_by_id([prompt_id]).get(prompt_id)
        if prompt is None:
            return
        if item is None:  # its job failed, expired or was cancelled: left for a re-run, not asked again now
            failed.add(prompt_id)
            return
        if item.error is not None or item.response is None:
            code = getattr(item.error, "code", None)
            detail = settings.redact(getattr(item.error, "message", None) or "no response")
            tables.log_error("responses", f"batch_{code or 'error'}", detail, prompt.category, prompt_id=prompt_id)
            failed.add(prompt_id)
            retry.add(prompt_id)
            return
        usage = usage_of(item.response)
        try:
            text, finish_reason = parse_answer(item.response)
        except PermanentFailure as exc:
            counters.add_usage(usage, wasted=True)
            tables.log_error("responses", exc.kind, exc.detail, prompt.category, prompt_id=prompt_id, permanent=True)
            report.failed_for_good += 1
            failed.discard(prompt_id)
            return
        except Rejected as exc:
            counters.add_usage(usage, wasted=True)
            counters.rejected += 1
            log.warning("rejected answer to prompt %d: %s", prompt_id, exc.detail)
            tables.log_error("responses", exc.kind, exc.detail, prompt.category, prompt_id=prompt_id)
            failed.add(prompt_id)
            retry.add(prompt_id)
            return
        counters.add_usage(usage)
        buffer.add((prompt, text, model, finish_reason, usage))
        failed.discard(prompt_id)
        report.answered += 1

    try:
        open_keys = runner.open_keys()
        todo = [p for p in pending(tables, opts) if f"p{p.prompt_id}" not in open_keys]
        for _ in range(MAX_BATCH_ROUNDS):
            if not todo and not runner.open_keys():
                break
            retry.clear()
            await runner.run([BatchRequest(f"p{p.prompt_id}", p.prompt, config) for p in todo], handle, buffer.flush)
            # Only what came back unusable is asked again, never more than the run was asked for (--limit).
            todo = [p for p in tables.prompts_by_id(sorted(retry)).values() if not tables.has_answer(p.prompt_id)]
            if todo:
                counters.retries += len(todo)
    finally:
        buffer.flush()
        await client.aio.aclose()
    report.failed = len(failed)


def _notify(message: str) -> None:
    import click

    click.echo(message, err=True)
