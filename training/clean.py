"""Clean training pairs before they teach the model a habit we do not want it to have.

The first adapter learned to write "toolformer: enabled ..." and long verbatim copies on web pages because
its data held tool-calling templates, prompts that paste the answer's text, and many near-identical Alpaca
prompts. Each rule below names one such habit; `clean_pairs` keeps a count of the pairs each rule dropped so
the recipe can be recorded next to the adapter (`model/training_record.json`).

First, the output-language line a ShareGPT browser extension appended to prompts ("Please write in English
language.") is cut from the end of a prompt (counted as `rewritten: language_suffix`): the model learned to
write it, and on its own it ranked first for some texts. So are the buttons other extensions left there ("Share
Prompt", Korean "translate now": `rewritten: extension_tail`).

Rules, checked in this order (a pair is counted under the first rule it breaks):

    template        template or tool-calling markers in the prompt ({{...}}, <|...|>, [INST], toolformer, ...)
    url_only        the prompt is nothing but URLs
    too_short       fewer than `min_words` words ("hi", "continue")
    too_long        more than `max_words` words: pasted documents, which teach copying
    copies_response at least 60% of the prompt's word 4-grams occur in the response (prompts of 12+ words)
    near_duplicate  the same prompt after folding case, punctuation and spacing, seen earlier in the input
    input_joined    an Alpaca 52K pair whose prompt is instruction + pasted input (down-weighted: only
                    `input_joined_keep` of them are kept, a seeded sample)

The kept pairs are shuffled with a seed and written in that order, so that successive training segments can
take successive slices (`revprompt train CLEAN.jsonl --skip-examples N`) and never see a pair twice.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..core.junk import EXTENSION_TAIL, LANGUAGE_SUFFIX, TEMPLATE, strip_extension_lines, verbatim_ratio, words
from .data import Pair, read_pairs

RULES = ("template", "url_only", "too_short", "too_long", "copies_response", "near_duplicate", "input_joined")

_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)


@dataclass
class CleanConfig:
    min_words: int = 3
    max_words: int = 60
    copy_ratio: float = 0.6
    copy_min_words: int = 12
    input_joined_keep: float = 0.2  # fraction of instruction+input Alpaca pairs kept
    input_joined_sources: tuple[str, ...] = ("alpaca52k",)  # sources whose multi-line prompts are instruction+input
    caps: dict[str, int] = field(default_factory=dict)  # source prefix -> most pairs kept from it
    seed: int = 0


@dataclass
class CleanReport:
    read: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    rewritten: Counter = field(default_factory=Counter)
    kept_by_source: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict:
        return {
            "read": self.read,
            "kept": self.kept,
            "dropped": {r: self.dropped.get(r, 0) for r in RULES + ("cap",)},
            "rewritten": {k: self.rewritten.get(k, 0) for k in ("language_suffix", "extension_tail")},
            "kept_by_source": dict(self.kept_by_source),
        }


def prompt_key(text: str) -> str:
    """Words only, lowercased: two prompts that differ in case, punctuation or spacing are one."""
    return " ".join(words(text))


def is_input_joined(pair: Pair, cfg: CleanConfig) -> bool:
    return "\n" in pair.prompt.strip() and any(pair.source.startswith(s) for s in cfg.input_joined_sources)


def rule_broken(pair: Pair, cfg: CleanConfig) -> str | None:
    """The first content rule the pair breaks (dedup and down-weighting are decided across pairs)."""
    prompt = pair.prompt.strip()
    if TEMPLATE.search(prompt):
        return "template"
    if _URL.search(prompt) and not _URL.sub("", prompt).strip(" \t\n,;"):
        return "url_only"
    n = len(words(prompt))
    if n < cfg.min_words:
        return "too_short"
    if n > cfg.max_words:
        return "too_long"
    if n >= cfg.copy_min_words and verbatim_ratio(prompt, pair.response) >= cfg.copy_ratio:
        return "copies_response"
    return None


def clean_pairs(pairs: Iterable[Pair], cfg: CleanConfig | None = None) -> tuple[list[Pair], CleanReport]:
    """Apply the rules in order; earlier pairs win duplicates, so list the best sources first."""
    cfg = cfg or CleanConfig()
    rng = random.Random(cfg.seed)
    report = CleanReport()
    seen: set[str] = set()
    kept: list[Pair] = []
    for pair in pairs:
        report.read += 1
        prompt = pair.prompt
        if LANGUAGE_SUFFIX.search(prompt) or LANGUAGE_SUFFIX.search(EXTENSION_TAIL.sub("", prompt)):
            report.rewritten["language_suffix"] += 1
        if EXTENSION_TAIL.search(prompt) or EXTENSION_TAIL.search(LANGUAGE_SUFFIX.sub("", prompt)):
            report.rewritten["extension_tail"] += 1
        stripped = strip_extension_lines(prompt)
        if stripped != prompt:
            pair = Pair(stripped, pair.response, source=pair.source)
        rule = rule_broken(pair, cfg)
        if rule is None:
            key = prompt_key(pair.prompt)
            if key in seen:
                rule = "near_duplicate"
            else:
                seen.add(key)
        if rule is None and is_input_joined(pair, cfg) and rng.random() >= cfg.input_joined_keep:
            rule = "input_joined"
        if rule:
            report.dropped[rule] += 1
            continue
        kept.append(pair)
    rng.shuffle(kept)
    if cfg.caps:
        capped: list[Pair] = []
        taken: Counter = Counter()
        for pair in kept:
            cap = next((c for prefix, c in cfg.caps.items() if pair.source.startswith(prefix)), None)
            if cap is not None and taken[pair.source] >= cap:
                report.dropped["cap"] += 1
                continue
            taken[pair.source] += 1
            capped.append(pair)
        kept = capped
    report.kept = len(kept)
    report.kept_by_source = Counter(p.source for p in kept)
    return kept, report


def clean_files(paths: list[str], out: str | Path, cfg: CleanConfig | None = None) -> CleanReport:
    """Read pairs from `paths` (in that order of preference), clean them, write `out` (JSONL) and
    `out`.recipe.json (the rules' settings and counts)."""
    cfg = cfg or CleanConfig()
    pairs: list[Pair] = []
    for path in paths:
        for pair in read_pairs([path]):  # one file at a time keeps each file's own order
            pair.source = Path(path.split("@")[0]).stem  # the file names the source: caps and rules use it
            pairs.append(pair)
    kept, report = clean_pairs(pairs, cfg)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for pair in kept:
            f.write(
                json.dumps(
                    {"prompt": pair.prompt, "response": pair.response, "source": pair.source}, ensure_ascii=False
                )
                + "\n"
            )
    recipe = {"inputs": list(paths), "settings": {k: v for k, v in vars(cfg).items()}, **report.to_dict()}
    Path(str(out) + ".recipe.json").write_text(json.dumps(recipe, indent=2, default=list))
    return report
