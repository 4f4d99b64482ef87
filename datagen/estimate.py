"""What a run will cost before it starts: calls, tokens, dollars at list prices, and bytes added to DuckDB.

Token counts are guesses (about 4 characters a token, category averages for generated prompts, an assumed
answer length), good to a factor of two: enough to catch a run that would cost $500 instead of $5.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# USD per million tokens (input, output) at Google's paid-tier list prices for text; thinking tokens bill as
# output. Unknown models get no dollar figure, only tokens; pass --price-in/--price-out to supply one.
PRICES_PER_MILLION: dict[str, tuple[float, float]] = {
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-flash-lite": (0.10, 0.40),
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-2.0-flash": (0.10, 0.40),
    "gemini-2.0-flash-lite": (0.075, 0.30),
}

# Ask before a run above either line (or pass --yes).
CONFIRM_ABOVE_USD = 1.0
CONFIRM_ABOVE_CALLS = 2000

CHARS_PER_TOKEN = 4
STAGE1_REQUEST_TOKENS = 450  # system instruction + the batch request
ASSUMED_ANSWER_TOKENS = 600  # a typical assistant answer without thinking
JSON_OVERHEAD_TOKENS = 3  # quotes, comma and escaping per prompt in the JSON list


@dataclass
class Estimate:
    what: str
    calls: int
    input_tokens: int
    output_tokens: int
    db_bytes: int
    model: str
    price: tuple[float, float] | None

    @property
    def cost_usd(self) -> float | None:
        if self.price is None:
            return None
        return (self.input_tokens * self.price[0] + self.output_tokens * self.price[1]) / 1e6

    @property
    def needs_confirmation(self) -> bool:
        cost = self.cost_usd
        return self.calls > CONFIRM_ABOVE_CALLS or (cost is not None and cost > CONFIRM_ABOVE_USD)

    def describe(self) -> str:
        cost = self.cost_usd
        money = f"about ${cost:,.2f}" if cost is not None else f"cost unknown (no list price for {self.model})"
        return (
            f"{self.what}: {self.calls:,} calls to {self.model}, ~{_millions(self.input_tokens)} input + "
            f"~{_millions(self.output_tokens)} output tokens, {money}; adds ~{_size(self.db_bytes)} to the database"
        )


def price_for(model: str, price_in: float | None = None, price_out: float | None = None) -> tuple[float, float] | None:
    if price_in is not None and price_out is not None:
        return (price_in, price_out)
    # Versioned names ("gemini-2.5-flash-001", "models/gemini-2.5-flash") price like their family.
    name = model.removeprefix("models/")
    for known in sorted(PRICES_PER_MILLION, key=len, reverse=True):
        if name == known or name.startswith(known + "-0") or name.startswith(known + "-preview"):
            return PRICES_PER_MILLION[known]
    return None


def estimate_prompt_stage(
    batches: Iterable[tuple[int, int]], model: str, price: tuple[float, float] | None
) -> Estimate:
    """`batches`: (prompts requested, average tokens per prompt of its category) per planned call."""
    calls = input_tokens = output_tokens = 0
    for n, avg_tokens in batches:
        calls += 1
        input_tokens += STAGE1_REQUEST_TOKENS
        output_tokens += n * (avg_tokens + JSON_OVERHEAD_TOKENS) + 10
    db_bytes = output_tokens * CHARS_PER_TOKEN * 2  # text plus its dedup key
    return Estimate("prompts", calls, input_tokens, output_tokens, db_bytes, model, price)


def estimate_response_stage(
    prompt_chars: Iterable[int],
    model: str,
    price: tuple[float, float] | None,
    max_output_tokens: int | None,
    thinking_budget: int,
) -> Estimate:
    calls = input_tokens = 0
    for chars in prompt_chars:
        calls += 1
        input_tokens += max(1, chars // CHARS_PER_TOKEN)
    per_answer = ASSUMED_ANSWER_TOKENS if not max_output_tokens else min(ASSUMED_ANSWER_TOKENS, max_output_tokens)
    per_answer += max(0, thinking_budget)  # thinking tokens are billed as output (worst case: all used)
    output_tokens = calls * per_answer
    db_bytes = (input_tokens + calls * ASSUMED_ANSWER_TOKENS) * CHARS_PER_TOKEN
    return Estimate("responses", calls, input_tokens, output_tokens, db_bytes, model, price)


def _millions(tokens: int) -> str:
    return f"{tokens / 1e6:.2f}M" if tokens >= 100_000 else f"{tokens:,}"


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


# The Batch API bills half the interactive price for the same tokens.
BATCH_PRICE_FACTOR = 0.5


def spent_line(
    input_tokens: int,
    output_tokens: int,
    wasted_tokens: int,
    model: str,
    price: tuple[float, float] | None,
    batch: bool = False,
) -> str:
    """What a finished run used and cost: every answer that came back counts, the rejected ones too."""
    line = f"tokens used: {input_tokens:,} input / {output_tokens:,} output"
    if wasted_tokens:
        line += f" ({wasted_tokens:,} of them on rejected or blocked answers)"
    if price is None:
        return line + f"; cost unknown (no list price for {model}; pass --price-in/--price-out)"
    cost = (input_tokens * price[0] + output_tokens * price[1]) / 1e6
    if batch:
        cost *= BATCH_PRICE_FACTOR
    return line + f"; cost ${cost:,.4f} at list prices" + (" (batch: half price)" if batch else "")
