"""Stage 1: fill each category with N unique prompts, 100 per Gemini call, resumable.

The plan is deterministic: category c needs batches 0..ceil(N/size)-1, batch i asking for
min(size, N - i*size) prompts about topic i. A batch is stored, with its prompts, in one transaction, so a
re-run simply runs the batches that are not stored yet: a kill loses only the calls in flight. When dedup
leaves a category short, "top-up" batches with the next numbers ask for exactly the shortfall.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from .categories import BY_KEY, RESPONSE_SCHEMA, SYSTEM_INSTRUCTION, TOPICS, Category, batch_request, topic_for
from .estimate import Estimate, estimate_prompt_stage
from .gemini import Backoff, CallCounters, CallProblem, GeminiCaller, PermanentFailure, RetriesExhausted
from .gemini import parse_prompt_list
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
        missing = [b for b in plan_base(category, opts.per_category, opts.batch_size, opts.topics)
                   if b.batch_no not in done]
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
    asyncio.run(_run(tables, settings, opts, backoff or Backoff(), report))
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
        batch.category.key, batch.batch_no, batch.topic, batch.size, prompts, settings.model, result.usage,
        result.attempts,
    )
    report.batches_done += 1
    report.prompts_received += len(prompts)
    report.prompts_added += added
    return True
