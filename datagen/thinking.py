"""The thinking config each Gemini model family accepts, so that no run fails on every call because of it.

The API refuses a thinking config the model does not support, with a 400 on every request:

  * Gemini 2.5 Flash: budget 0 (off) to 24,576, or -1 (dynamic);
  * Gemini 2.5 Flash-Lite: 0 (off) or 512 to 24,576, or -1;
  * Gemini 2.5 Pro: 128 to 32,768, or -1; it cannot turn thinking off, so budget 0 is an error;
  * Gemini 3 models take `thinking_level` (MINIMAL/LOW/MEDIUM/HIGH) instead of a budget, and a request that
    sets both is refused; Pro thinks at least at LOW, the Flash models go down to MINIMAL;
  * Gemini 2.0 and 1.5 do not think: no thinking config is sent.

Datagen wants as little thinking as the model allows (cheaper, and closer to the plain answers the small model
is trained on), so "nothing asked" means the least: off where allowed, else the minimum. A value the model
cannot take is moved to the nearest one it can, with a note the command prints; only a request that makes no
sense for the family (a budget for Gemini 3, a level for 2.5) is refused. Unknown names (tuned models, new
families) get what was asked, as before.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import UserError

LEVELS = ("MINIMAL", "LOW", "MEDIUM", "HIGH")
# Thinking tokens assumed per answer at each level, for the cost estimate only (the API sets no fixed count).
LEVEL_TOKENS = {"MINIMAL": 0, "LOW": 1024, "MEDIUM": 4096, "HIGH": 8192}


@dataclass(frozen=True)
class Family:
    name: str
    min_budget: int | None = None  # smallest positive budget; None: the family takes no budget
    max_budget: int | None = None
    can_disable: bool = False
    levels: tuple[str, ...] = ()  # Gemini 3: accepted thinking_level values, lowest first


FLASH_25 = Family("gemini-2.5-flash", 1, 24_576, can_disable=True)
FLASH_LITE_25 = Family("gemini-2.5-flash-lite", 512, 24_576, can_disable=True)
PRO_25 = Family("gemini-2.5-pro", 128, 32_768)
FLASH_3 = Family("gemini-3 flash", levels=LEVELS)
PRO_3 = Family("gemini-3 pro", levels=("LOW", "MEDIUM", "HIGH"))
NO_THINKING = Family("no thinking")
UNKNOWN = Family("unknown")


def family_of(model: str) -> Family:
    name = model.lower().rsplit("/", 1)[-1]  # "models/x", "publishers/google/models/x"
    if name.startswith("gemini-3"):
        return PRO_3 if "-pro" in name else FLASH_3
    if name.startswith("gemini-2.5-flash-lite"):
        return FLASH_LITE_25
    if name.startswith("gemini-2.5-flash"):
        return FLASH_25
    if name.startswith("gemini-2.5-pro"):
        return PRO_25
    if name.startswith(("gemini-2.0", "gemini-1.5", "gemini-1.0")):
        return NO_THINKING
    return UNKNOWN


@dataclass(frozen=True)
class ThinkingPlan:
    """What is sent (`budget` or `level`, or neither), an optional note for the user, and the tokens assumed."""

    budget: int | None = None
    level: str | None = None
    note: str | None = None
    estimated_tokens: int = 0

    def config(self):
        """The google-genai ThinkingConfig, or None when the request should carry none."""
        if self.budget is None and self.level is None:
            return None
        from google.genai import types

        if self.level is not None:
            return types.ThinkingConfig(thinking_level=self.level)
        return types.ThinkingConfig(thinking_budget=self.budget)


def plan_thinking(model: str, budget: int | None = None, level: str | None = None) -> ThinkingPlan:
    """The thinking config for `model`. budget None means "as little as the model allows"; -1 is dynamic."""
    family = family_of(model)
    level = level.upper() if level else None
    if level is not None and level not in LEVELS:
        raise UserError(f"unknown thinking level {level!r}; choose one of {', '.join(LEVELS).lower()}")
    if family is UNKNOWN:
        if level is not None:
            return ThinkingPlan(level=level, estimated_tokens=LEVEL_TOKENS[level])
        budget = 0 if budget is None else budget
        return ThinkingPlan(budget=budget, estimated_tokens=max(0, budget))
    if family.levels:
        return _plan_level(model, family, budget, level)
    if level is not None:
        hint = "it does not think" if family is NO_THINKING else "it takes --thinking-budget"
        raise UserError(f"--thinking-level is for Gemini 3 models; {model}: {hint}")
    if family is NO_THINKING:
        note = None if budget in (None, 0) else f"{model} does not think; --thinking-budget {budget} is ignored"
        return ThinkingPlan(note=note)
    return _plan_budget(model, family, budget)


def _plan_budget(model: str, family: Family, budget: int | None) -> ThinkingPlan:
    asked = budget
    if budget is None or budget == 0:
        budget = 0 if family.can_disable else family.min_budget
    elif budget == -1:
        return ThinkingPlan(budget=-1, estimated_tokens=family.max_budget or 0)
    else:
        budget = min(max(budget, family.min_budget or 1), family.max_budget or budget)
    note = None
    if asked not in (None, budget):
        if asked == 0:
            note = f"{model} cannot turn thinking off; using its smallest thinking budget, {budget} tokens"
        else:
            note = f"{model} takes thinking budgets of {family.min_budget}..{family.max_budget}; using {budget}"
    elif asked is None and budget:
        note = f"{model} cannot turn thinking off; using its smallest thinking budget, {budget} tokens"
    return ThinkingPlan(budget=budget, note=note, estimated_tokens=budget)


def _plan_level(model: str, family: Family, budget: int | None, level: str | None) -> ThinkingPlan:
    if level is not None and budget is not None:
        raise UserError("give --thinking-level or --thinking-budget, not both (the API refuses a request with both)")
    if budget is not None and budget > 0:
        raise UserError(f"{model} takes --thinking-level ({', '.join(family.levels).lower()}), not a budget")
    if budget == -1:
        return ThinkingPlan(estimated_tokens=LEVEL_TOKENS["HIGH"])  # no config: the model's own default
    note = None
    if level is None:
        level = family.levels[0]
        if budget == 0 and level != "MINIMAL":
            note = f"{model} cannot turn thinking off; using thinking level {level.lower()}"
    elif level not in family.levels:
        chosen = next((lv for lv in family.levels if LEVELS.index(lv) >= LEVELS.index(level)), family.levels[-1])
        note = f"{model} has no thinking level {level.lower()}; using {chosen.lower()}"
        level = chosen
    return ThinkingPlan(level=level, note=note, estimated_tokens=LEVEL_TOKENS[level])
