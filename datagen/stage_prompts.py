"""Stage 1: fill each category with N unique prompts, 100 per Gemini call, resumable.

The plan is deterministic: category c needs batches 0..ceil(N/size)-1, batch i asking for
min(size, N - i*size) prompts about topic i. A batch is stored, with its prompts, in one transaction, so a
re-run simply runs the batches that are not stored yet: a kill loses only the calls in flight. When dedup
leaves a category short, "top-up" batches with the next numbers ask for exactly the shortfall.

With `batch` (`datagen prompts --batch`) the same plan goes to the Gemini Batch API (batch.py: half price,
answered within hours): each planned call is one request of a job, keyed `category:batch_no:size`, so an
answer names its batch even when it comes back to a later run. A re-run first collects the jobs an earlier run
left open, then plans what is still missing; a rejected answer is asked again in a new job.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from .categories import BY_KEY, RESPONSE_SCHEMA, SYSTEM_INSTRUCTION, TOPICS, Category, batch_request, topic_for
from .estimate import Estimate, estimate_prompt_stage
from .gemini import (
    Backoff,
    CallCounters,
    CallProblem,
    GeminiCaller,
    PermanentFailure,
    RetriesExhausted,
    parse_prompt_list,
)
from .pool import RunProgress, run_pool
from .settings import GeminiSettings
from .tables import DatagenTables
from .thinking import plan_thinking

log = logging.getLogger("revprompt.datagen")

MAX_BATCH_SIZE = 100
# Top-up rounds stop early when one adds nothing new: the model is only repeating itself.
MAX_TOPUP_ROUNDS = 5


@dataclass(frozen=True)
class PromptBatch:
    category: Category
    batch_no: int
    size: int
    topic: str


@dataclass
class PromptOptions:
    per_category: int
    categories: Sequence[str] = tuple(BY_KEY)
    batch_size: int = MAX_BATCH_SIZE
    concurrency: int = 100
    temperature: float = 1.0
    topics: Sequence[str] = TOPICS
    show_progress: bool = True
    batch: bool = False  # through the Batch API (half price, answered within hours): see batch.py
    poll_s: float = 30.0


@dataclass
class PromptStageReport:
    batches_done: int = 0
    batches_failed: int = 0
    batches_skipped: int = 0  # already done before this run
    prompts_added: int = 0
    prompts_received: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    target: int = 0
    counters: CallCounters = field(default_factory=CallCounters)

    @property
    def duplicates_dropped(self) -> int:
        return self.prompts_received - self.prompts_added

    @property
    def complete(self) -> bool:
        return all(n >= self.target for n in self.counts.values())


def plan_base(category: Category, per_category: int, batch_size: int, topics: Sequence[str]) -> list[PromptBatch]:
    n_batches = math.ceil(per_category / batch_size)
    return [
        PromptBatch(category, i, min(batch_size, per_category - i * batch_size), topic_for(i, topics))
        for i in range(n_batches)
    ]


def plan_round(tables: DatagenTables, opts: PromptOptions, topup: bool) -> list[PromptBatch]:
    """The batches still to run: missing base batches first; with `topup`, batches for any shortfall."""
    jobs: list[PromptBatch] = []
    for key in opts.categories:
        category = BY_KEY[key]
        done = tables.done_batches(key)
        missing = [
            b for b in plan_base(category, opts.per_category, opts.batch_size, opts.topics) if b.batch_no not in done
        ]
        if missing or not topup:
            jobs.extend(missing)
            continue
        shortfall = opts.per_category - tables.prompt_count(key)
        next_no = max(done, default=-1) + 1
        while shortfall > 0:
            size = min(opts.batch_size, shortfall)
            jobs.append(PromptBatch(category, next_no, size, topic_for(next_no, opts.topics)))
            shortfall -= size
            next_no += 1
    return jobs


def estimate(tables: DatagenTables, opts: PromptOptions, model: str, price) -> Estimate:
    jobs = plan_round(tables, opts, topup=False) or plan_round(tables, opts, topup=True)
    return estimate_prompt_stage(((b.size, b.category.avg_tokens) for b in jobs), model, price)


def generation_config(temperature: float, model: str):
    from google.genai import types

    return types.GenerateContentConfig(
        system_instruction=SYSTEM_INSTRUCTION,
        temperature=temperature,
        response_mime_type="application/json",
        response_schema=RESPONSE_SCHEMA,
        # Writing lists of prompts needs no reasoning: as little thinking as the model allows (off where it can).
        thinking_config=plan_thinking(model).config(),
    )


def generate_prompts(
    tables: DatagenTables, settings: GeminiSettings, opts: PromptOptions, backoff: Backoff | None = None
) -> PromptStageReport:
    """Run stage 1 to completion (or until calls keep failing). Raises FatalError on a bad key or model."""
    for key in opts.categories:
        if key not in BY_KEY:
            raise ValueError(f"unknown category {key!r}")
    if not 1 <= opts.batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch size must be 1..{MAX_BATCH_SIZE}")
    report = PromptStageReport(target=opts.per_category)
    n_base = math.ceil(opts.per_category / opts.batch_size)
    report.batches_skipped = sum(
        sum(1 for batch_no in tables.done_batches(k) if batch_no < n_base) for k in opts.categories
    )
    run = _run_batch_api if opts.batch else _run
    asyncio.run(run(tables, settings, opts, backoff or Backoff(), report))
    report.counts = {k: tables.prompt_count(k) for k in opts.categories}
    return report


async def _run(
    tables: DatagenTables, settings: GeminiSettings, opts: PromptOptions, backoff: Backoff, report: PromptStageReport
) -> None:
    client = settings.make_client()
    caller = GeminiCaller(client, settings, backoff)
    report.counters = caller.counters
    config = generation_config(opts.temperature, settings.model)
    try:
        for _ in range(MAX_TOPUP_ROUNDS + 1):
            topup = not _any_missing_base(tables, opts)
            jobs = plan_round(tables, opts, topup=topup)
            if not jobs:
                return
            added_before = report.prompts_added
            label = "prompts (top-up)" if topup else "prompts"
            with RunProgress(label, len(jobs), caller.counters, opts.show_progress) as progress:
                result = await run_pool(
                    jobs, lambda b: _run_batch(tables, caller, settings, config, b, report), opts.concurrency, progress
                )
            if result.failed:
                return  # calls keep failing: leave the rest to a re-run rather than loop on it
            if topup and report.prompts_added == added_before:
                log.warning("top-up added no new prompts: the model repeats itself; stopping short of the target")
                return
    finally:
        await client.aio.aclose()


def _any_missing_base(tables: DatagenTables, opts: PromptOptions) -> bool:
    return bool(plan_round(tables, opts, topup=False))


async def _run_batch(
    tables: DatagenTables,
    caller: GeminiCaller,
    settings: GeminiSettings,
    config,
    batch: PromptBatch,
    report: PromptStageReport,
) -> bool:
    def on_problem(problem: CallProblem, will_retry: bool) -> None:
        # Rejected answers are logged every time (the "rejected and logged"); transient HTTP trouble
        # only when it finally fails, or the table would fill with 429s during a quota storm.
        if problem.kind in ("malformed_json", "wrong_shape", "empty"):
            log.warning("rejected %s batch %d: %s", batch.category.key, batch.batch_no, problem.detail)
            tables.log_error("prompts", problem.kind, problem.detail, batch.category.key, batch.batch_no)

    request = batch_request(batch.category, batch.size, batch.topic)
    try:
        result = await caller.generate(request, config, parse_prompt_list, on_problem)
    except (RetriesExhausted, PermanentFailure) as exc:
        log.warning("%s batch %d failed: %s", batch.category.key, batch.batch_no, exc.detail)
        tables.log_error("prompts", exc.kind, exc.detail, batch.category.key, batch.batch_no)
        report.batches_failed += 1
        return False
    prompts = result.value[: batch.size]  # a model that over-delivers must not overshoot the target
    added = tables.save_batch(
        batch.category.key,
        batch.batch_no,
        batch.topic,
        batch.size,
        prompts,
        settings.model,
        result.usage,
        result.attempts,
    )
    report.batches_done += 1
    report.prompts_received += len(prompts)
    report.prompts_added += added
    return True


# Rounds of --batch within one planning round: a round re-asks only what came back rejected or with an error.
MAX_BATCH_ROUNDS = 3


def batch_key(batch: PromptBatch) -> str:
    return f"{batch.category.key}:{batch.batch_no}:{batch.size}"


def batch_from_key(key: str, topics: Sequence[str]) -> PromptBatch | None:
    """The PromptBatch a Batch API request was for (its key holds category, number and size; the topic follows
    from the number), or None for a key this version cannot read."""
    try:
        category, batch_no, size = key.rsplit(":", 2)
        return PromptBatch(BY_KEY[category], int(batch_no), int(size), topic_for(int(batch_no), topics))
    except (KeyError, ValueError):
        return None


async def _run_batch_api(
    tables: DatagenTables, settings: GeminiSettings, opts: PromptOptions, backoff: Backoff, report: PromptStageReport
) -> None:
    """Stage 1 through the Batch API: an earlier run's jobs first, then jobs for the batches still missing."""
    from .batch import BatchRequest, BatchRunner
    from .gemini import Rejected, usage_of

    client = settings.make_client()
    counters = report.counters
    runner = BatchRunner(client, tables, settings, "prompts", counters, backoff, opts.poll_s, _notify)
    config = generation_config(opts.temperature, settings.model)
    failed: set[str] = set()  # keys without a stored answer after this run's tries
    retry: set[str] = set()  # keys to ask again in the next job
    tries: dict[str, int] = {}

    def handle(key: str, model: str, item) -> None:
        batch = batch_from_key(key, opts.topics)
        if batch is None:
            log.warning("batch answer with an unknown key %r ignored", key)
            return
        category = batch.category.key
        if batch.batch_no in tables.done_batches(category):
            return  # stored already (a job read again after a kill between storing and marking it)
        tries[key] = tries.get(key, 0) + 1
        if item is None:  # its job failed, expired or was cancelled: left for a re-run, not asked again now
            failed.add(key)
            return
        if item.error is not None or item.response is None:
            code = getattr(item.error, "code", None)
            detail = settings.redact(getattr(item.error, "message", None) or "no response")
            tables.log_error("prompts", f"batch_{code or 'error'}", detail, category, batch.batch_no)
            failed.add(key)
            retry.add(key)
            return
        usage = usage_of(item.response)
        try:
            prompts = parse_prompt_list(item.response)
        except Rejected as exc:
            counters.add_usage(usage, wasted=True)
            counters.rejected += 1
            log.warning("rejected %s batch %d: %s", category, batch.batch_no, exc.detail)
            tables.log_error("prompts", exc.kind, exc.detail, category, batch.batch_no)
            failed.add(key)
            retry.add(key)
            return
        counters.add_usage(usage)
        prompts = prompts[: batch.size]  # a model that over-delivers must not overshoot the target
        added = tables.save_batch(category, batch.batch_no, batch.topic, batch.size, prompts, model, usage, tries[key])
        failed.discard(key)
        report.batches_done += 1
        report.prompts_received += len(prompts)
        report.prompts_added += added

    def request(batch: PromptBatch) -> BatchRequest:
        return BatchRequest(batch_key(batch), batch_request(batch.category, batch.size, batch.topic), config)

    def nothing_to_flush() -> None:  # save_batch commits each answer with its batch row
        pass

    try:
        for _ in range(MAX_TOPUP_ROUNDS + 1):
            if runner.open_keys():  # what an earlier run's jobs bring changes the plan: collect them first
                await runner.run([], handle, nothing_to_flush)
            topup = not _any_missing_base(tables, opts)
            todo = plan_round(tables, opts, topup=topup)
            if not todo:
                break
            added_before = report.prompts_added
            for _ in range(MAX_BATCH_ROUNDS):
                retry.clear()
                await runner.run([request(b) for b in todo], handle, nothing_to_flush)
                todo = [
                    b for b in todo if batch_key(b) in retry and b.batch_no not in tables.done_batches(b.category.key)
                ]
                if not todo:
                    break
                counters.retries += len(todo)
            if failed:
                break  # calls keep failing: leave the rest to a re-run rather than loop on it
            if topup and report.prompts_added == added_before:
                log.warning("top-up added no new prompts: the model repeats itself; stopping short of the target")
                break
    finally:
        await client.aio.aclose()
    report.batches_failed = len(failed)


def _notify(message: str) -> None:
    import click

    click.echo(message, err=True)
