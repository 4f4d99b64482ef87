"""One Gemini call with our own retry policy, and the parsers that accept or reject what comes back.

google-genai retries nothing unless asked (no `retry_options`), so this module owns the policy:

  * 408/429/5xx, network errors and timeouts are transient: retried with exponential backoff and jitter,
    honouring the server's RetryInfo delay when a 429 carries one;
  * an answer that is unusable (malformed JSON, wrong shape, empty) is *rejected*: reported, never returned,
    and the call is retried, since a fresh sample usually parses;
  * a bad key, a missing model or no permission is *fatal*: no other call can succeed, so the run stops;
  * anything else (a blocked prompt, another 4xx) fails that one item for good.

Every detail string passes through `GeminiSettings.redact` before it leaves here.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import json
import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .settings import GeminiSettings
from .tables import Usage

log = logging.getLogger("revprompt.datagen")

T = TypeVar("T")

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
FATAL_STATUS = frozenset({401, 403, 404})
BLOCKING_FINISH = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"})


class CallProblem(Exception):
    """Something went wrong with one call; `kind` is a short label stored in datagen_errors."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class Rejected(CallProblem):
    """The model answered, but the answer cannot be used; worth another sample."""


class Transient(CallProblem):
    """Rate limit, server error or network trouble; worth waiting and trying again."""

    def __init__(self, kind: str, detail: str, retry_after: float | None = None):
        super().__init__(kind, detail)
        self.retry_after = retry_after


class PermanentFailure(CallProblem):
    """This item fails the same way every time (blocked prompt, invalid request)."""


class RetriesExhausted(CallProblem):
    """Still transient or rejected after the last attempt; a later run tries again."""


class FatalError(CallProblem):
    """No call of this run can succeed (bad key, unknown model, no permission)."""


@dataclass
class Backoff:
    """Exponential backoff with jitter: attempt n waits about base_s * 2**(n-1), at most max_s."""

    base_s: float = 1.0
    max_s: float = 60.0
    max_attempts: int = 8

    def delay(self, attempt: int, server_hint: float | None = None) -> float:
        wait = min(self.max_s, self.base_s * 2 ** (attempt - 1))
        # "Equal jitter": keeps a floor so a burst of 429s is not retried at once, spreads the rest.
        wait = wait / 2 + random.uniform(0, wait / 2)
        if server_hint is not None:
            wait = max(wait, min(server_hint, self.max_s))
        return wait


@dataclass
class CallResult(Generic[T]):
    value: T
    attempts: int
    usage: Usage  # summed over all attempts, the rejected ones included: what this item cost


def add_usage(a: Usage, b: Usage) -> Usage:
    """Two usages summed; None stays None only when both are None (the API did not say)."""

    def plus(x, y):
        return None if x is None and y is None else (x or 0) + (y or 0)

    return Usage(plus(a.input_tokens, b.input_tokens), plus(a.output_tokens, b.output_tokens))


@dataclass
class CallCounters:
    """What happened across all calls of a run, for the end-of-run summary and the progress bar."""

    calls: int = 0
    retries: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    network_errors: int = 0
    rejected: int = 0
    # Tokens of every answer that came back, used or not: a rejected or blocked answer is billed all the same.
    input_tokens: int = 0
    output_tokens: int = 0
    wasted_tokens: int = 0  # input + output of the answers that were rejected or blocked

    def add_usage(self, usage: Usage, wasted: bool = False) -> None:
        self.input_tokens += usage.input_tokens or 0
        self.output_tokens += usage.output_tokens or 0
        if wasted:
            self.wasted_tokens += (usage.input_tokens or 0) + (usage.output_tokens or 0)


ProblemHook = Callable[[CallProblem, bool], None]  # (problem, will_retry)


class GeminiCaller:
    """Makes generate_content calls through the async client, with the retry policy above."""

    def __init__(self, client, settings: GeminiSettings, backoff: Backoff | None = None):
        self.client = client
        self.settings = settings
        self.backoff = backoff or Backoff()
        self.counters = CallCounters()

    async def generate(
        self,
        contents: str,
        config: Any,
        parse: Callable[[Any], T],
        on_problem: ProblemHook | None = None,
    ) -> CallResult[T]:
        """Call until `parse` accepts an answer; raise PermanentFailure, RetriesExhausted or FatalError."""
        attempts = self.backoff.max_attempts
        spent = Usage()
        for attempt in range(1, attempts + 1):
            self.counters.calls += 1
            try:
                response = await self.client.aio.models.generate_content(
                    model=self.settings.model, contents=contents, config=config
                )
                usage = usage_of(response)
                spent = add_usage(spent, usage)
                try:
                    value = parse(response)
                except CallProblem:
                    self.counters.add_usage(usage, wasted=True)
                    raise
                self.counters.add_usage(usage)
                return CallResult(value, attempt, spent)
            except CallProblem as problem:
                outcome = problem
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the SDK raises many types; sort them into the classes above
                outcome = self._classify(exc)

            if isinstance(outcome, Rejected):
                self.counters.rejected += 1
            if isinstance(outcome, (FatalError, PermanentFailure)):
                if on_problem:
                    on_problem(outcome, False)
                raise outcome
            will_retry = attempt < attempts
            if on_problem:
                on_problem(outcome, will_retry)
            if not will_retry:
                raise RetriesExhausted(outcome.kind, f"gave up after {attempts} attempts; last: {outcome.detail}")
            self.counters.retries += 1
            hint = outcome.retry_after if isinstance(outcome, Transient) else None
            delay = self.backoff.delay(attempt, hint)
            log.info("retrying in %.2fs after %s: %s", delay, outcome.kind, outcome.detail)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # the loop always returns or raises

    def _classify(self, exc: Exception) -> CallProblem:
        from google.genai import errors as genai_errors

        redact = self.settings.redact
        if isinstance(exc, genai_errors.APIError):
            code = int(exc.code or 0)
            message = redact(exc.message or exc.status or "")
            detail = f"HTTP {code} {exc.status or ''}: {message}".strip()
            if code == 429:
                self.counters.rate_limited += 1
                return Transient("rate_limited", detail, retry_after=retry_after(exc))
            if code in TRANSIENT_STATUS:
                self.counters.server_errors += 1
                return Transient(f"http_{code}", detail, retry_after=retry_after(exc))
            # Gemini answers a bad API key with 400 INVALID_ARGUMENT, so the message has to be read too.
            if code in FATAL_STATUS or "api key" in message.lower():
                return FatalError(f"http_{code}", detail)
            return PermanentFailure(f"http_{code}", detail)
        if _is_network_error(exc):
            self.counters.network_errors += 1
            return Transient("network", redact(f"{type(exc).__name__}: {exc}"))
        if isinstance(exc, json.JSONDecodeError):
            # HTTP 200 whose body is not the API's JSON: a broken proxy or a cut connection.
            self.counters.server_errors += 1
            return Transient("bad_http_body", f"response body is not JSON ({exc.msg})")
        return Transient("unexpected", redact(f"{type(exc).__name__}: {exc}"))


@functools.lru_cache(maxsize=1)
def _network_error_types() -> tuple[type, ...]:
    """Transport errors of whichever HTTP stack google-genai runs on (httpx2, httpx or aiohttp)."""
    types_: list[type] = [TimeoutError, ConnectionError, asyncio.TimeoutError]
    for module_name, attr in (("httpx2", "TransportError"), ("httpx", "TransportError"), ("aiohttp", "ClientError")):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if hasattr(module, attr):
            types_.append(getattr(module, attr))
    return tuple(types_)


def _is_network_error(exc: Exception) -> bool:
    return isinstance(exc, _network_error_types())


_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)s\s*$")


def retry_after(exc) -> float | None:
    """Seconds the server asked us to wait: google.rpc.RetryInfo's retryDelay, else a Retry-After header."""
    details = exc.details if isinstance(exc.details, dict) else {}
    for item in (details.get("error", details) or {}).get("details", []) or []:
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("RetryInfo"):
            match = _DURATION.match(str(item.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    try:
        value = headers.get("retry-after") or headers.get("Retry-After")
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def usage_of(response) -> Usage:
    meta = getattr(response, "usage_metadata", None)
    if meta is None:
        return Usage()
    output = (meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)
    return Usage(input_tokens=meta.prompt_token_count, output_tokens=output or None)


def finish_reason_of(response) -> str | None:
    candidates = getattr(response, "candidates", None) or []
    if not candidates or candidates[0].finish_reason is None:
        return None
    reason = candidates[0].finish_reason
    return getattr(reason, "value", None) or str(reason)


def response_text(response) -> str:
    """The answer's text parts joined (thought parts excluded), '' when there are none."""
    candidates = getattr(response, "candidates", None) or []
    if not candidates or candidates[0].content is None:
        return ""
    parts = candidates[0].content.parts or []
    return "".join(p.text for p in parts if getattr(p, "text", None) and not getattr(p, "thought", False))


def parse_prompt_list(response) -> list[str]:
    """Stage 1: the {"prompts": [...]} object the response schema asks for, or Rejected."""
    text = response_text(response)
    if not text.strip():
        raise Rejected("empty", f"no text in the answer (finish_reason={finish_reason_of(response)})")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Rejected(
            "malformed_json",
            f"answer is not valid JSON: {exc.msg} at char {exc.pos} of {len(text)} "
            f"(finish_reason={finish_reason_of(response)})",
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("prompts"), list):
        raise Rejected("wrong_shape", f'answer is JSON but not {{"prompts": [...]}} (got {type(data).__name__})')
    prompts = [p.strip() for p in data["prompts"] if isinstance(p, str) and p.strip()]
    if not prompts:
        raise Rejected("empty", "answer holds no usable prompt strings")
    return prompts


def parse_answer(response) -> tuple[str, str | None]:
    """Stage 2: the answer text and its finish reason; blocked prompts fail for good, empty answers are rejected."""
    feedback = getattr(response, "prompt_feedback", None)
    block = getattr(feedback, "block_reason", None) if feedback else None
    if block:
        raise PermanentFailure("blocked", f"prompt blocked ({getattr(block, 'value', block)})")
    reason = finish_reason_of(response)
    text = response_text(response)
    if not text.strip():
        if reason in BLOCKING_FINISH:
            raise PermanentFailure("blocked", f"answer withheld (finish_reason={reason})")
        raise Rejected("empty", f"no text in the answer (finish_reason={reason})")
    return text, reason
