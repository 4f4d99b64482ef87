"""Which candidate prompts are junk: pure functions over text, shared by the engine and the web yardstick.

Two levels:

- `degenerate(prompt)`: junk whatever the page says (a template or tool-calling marker, a phrase repeated over
  and over). The engine drops these before ranking: perplexity favours repeats, so they would often win.
- `junk_reasons(prompt, page)`: also junk *for this page*: a URL or a code fence the page lacks, a programming
  language the page never names, a long verbatim copy of the page, or a length no prompt has (< 3 or > 60
  words). The web yardstick (`revprompt eval --pages`) counts top-1 candidates by these reasons. The engine
  ranks the page-dependent ones (`page_junk`) after every other candidate: they stay visible, last. For an
  assistant's response rather than a web page, a verbatim copy is not demoted (see DEMOTED_REASONS).
"""

from __future__ import annotations

import re
from collections import Counter

TEMPLATE = re.compile(
    r"toolformer|\{\{|\}\}|<\|[^|>]*\|>|\[/?INST\]|<</?SYS>>|###\s*(instruction|input|response)|<noinput>"
    r"|\{(input|instruction|prompt|text)\}",
    re.IGNORECASE,
)
# The output-language line a ShareGPT browser extension appended to users' prompts ("Please write in English
# language."): the model learned it, and alone it is the most probable "prompt" of many texts. Data cleaning
# strips it from training prompts; a candidate that is nothing else is template junk.
LANGUAGE_SUFFIX = re.compile(r"(?is)(?:^|\s+)please (?:write|respond|answer|reply) in [^\n.]{0,60}?language\.?\s*$")
# The buttons other ShareGPT extensions left at the end of prompts: "Share Prompt", and Korean "translate now"
# (지금 번역하기). Cut from training prompts like the language line; a candidate that is nothing else is template junk.
EXTENSION_TAIL = re.compile(r"\s*(?:Share Prompt|지금 번역하기)\s*$")
URL = re.compile(r"https?://\S+|www\.\w\S+", re.IGNORECASE)
FENCE = "```"
_WORD = re.compile(r"\w+", re.UNICODE)

# Programming languages a prompt may name, as a page would spell them. Case-sensitive where the name is also an
# English word ("Go", "Swift", "Rust"); "C" and "R" alone are left out: too many false alarms.
LANGUAGES: dict[str, re.Pattern] = {
    name: re.compile(pattern)
    for name, pattern in {
        "Python": r"(?i)\bpython\b",
        "JavaScript": r"(?i)\bjavascript\b|\bnode\.?js\b",
        "TypeScript": r"(?i)\btypescript\b",
        "Java": r"(?i)\bjava\b(?!\s*script)",
        "C++": r"(?i)(?<!\w)c\+\+(?!\w)|\bcpp\b",
        "C#": r"(?i)(?<!\w)c#(?!\w)|\bcsharp\b",
        "Ruby": r"\bRuby\b",
        "Go": r"\bGo\b(?=\s+(code|program|function|language|module|package)s?\b)|\bgolang\b",
        "PHP": r"(?i)\bphp\b",
        "Swift": r"\bSwift\b",
        "Kotlin": r"(?i)\bkotlin\b",
        "Rust": r"\bRust\b",
        "Scala": r"\bScala\b",
        "Haskell": r"(?i)\bhaskell\b",
        "Perl": r"\bPerl\b",
        "MATLAB": r"(?i)\bmatlab\b",
        "SQL": r"(?i)\bsql\b|\bmysql\b|\bpostgres(ql)?\b",
        "R": r"\bR (code|script|program|function|language)\b",
        "Bash": r"(?i)\bbash\b",
        "PowerShell": r"(?i)\bpowershell\b",
        "Lua": r"\bLua\b",
        "Dart": r"\bDart\b",
        "Elixir": r"\bElixir\b",
        "VBA": r"\bVBA\b",
    }.items()
}

MIN_WORDS, MAX_WORDS = 3, 60
VERBATIM_RATIO, VERBATIM_MIN_WORDS = 0.6, 12
REASONS = ("template", "repetition", "url", "code_fence", "language", "verbatim", "too_short", "too_long")
# The reasons that depend on the page: a prompt that copies the page, or names a URL, a code fence or a
# programming language the page lacks, is an implausible question for it whatever its perplexity.
PAGE_REASONS = ("url", "code_fence", "language", "verbatim")
# What a text is decides which of them the engine ranks last (`page_junk`). On a web page, a long verbatim copy
# is a question built from one of its sentences: junk by the yardstick. An assistant's answer, though, often
# restates its prompt ("Yes, you can cook an egg using direct sunlight ..."), so there a verbatim copy is a
# likely prompt: on dev600 (chat pairs, segment 4) the lowest-perplexity candidate was demoted as verbatim on
# 67 of 600 responses, and ranking it first instead raised top-1 cosine by 0.064 on those (0.726 -> 0.733 over
# all 600). A copy of a page stays junk; a copy of a response does not.
KINDS = ("response", "page")
DEMOTED_REASONS = {"page": PAGE_REASONS, "response": ("url", "code_fence", "language")}


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


# A run of one character 20 times or of a 2-4 character unit 8 times: "Brainstorm ______...", "cargo rust
# -------...", "what is x ❓❓❓❓...". Word n-grams miss these (a run of "_" is one "word", "-" none at all), and a
# decoder that falls into one stays there until the length cap with a low perplexity per token. A blank to fill
# in ("____") or a short rule ("---") stays well under the threshold.
_CHARACTER_RUN = re.compile(r"(\S)\1{19,}|(\S.{1,3}?)\2{7,}", re.DOTALL)
# Five list markers with nothing between them ("1. 2. 3. 4. 5. 6. ..."): a decoder counting, not a prompt.
_COUNTING = re.compile(r"(?:(?<!\w)\d{1,3}[.)]\s*){5,}")


def repeated(prompt: str) -> bool:
    """A phrase said again and again: the same 1-4 words three times in a row ("toolformer: toolformer:
    toolformer:", "the the the"), one phrase, said three times or more, making up half the prompt, a run
    of one character or a short unit of characters (`_CHARACTER_RUN`), or list markers counting up alone."""
    if _CHARACTER_RUN.search(prompt) or _COUNTING.search(prompt):
        return True
    tokens = words(prompt)
    if len(tokens) < 3:
        return False
    for n in (1, 2, 3, 4):
        for i in range(len(tokens) - 3 * n + 1):
            gram = tokens[i : i + n]
            if tokens[i + n : i + 2 * n] == gram and tokens[i + 2 * n : i + 3 * n] == gram:
                return True
        counts = Counter(_ngrams(tokens, n))
        if counts:
            _, times = counts.most_common(1)[0]
            if times >= 3 and times * n * 2 >= len(tokens):
                return True
    return False


def degenerate(prompt: str) -> str | None:
    """'template' or 'repetition' when the prompt is junk on any page, else None."""
    if TEMPLATE.search(prompt) or _only_language_suffix(prompt):
        return "template"
    if repeated(prompt):
        return "repetition"
    return None


def _only_language_suffix(prompt: str) -> bool:
    """Nothing but the extensions' lines: the output-language line and/or a "Share Prompt" button."""
    if not (LANGUAGE_SUFFIX.search(prompt) or EXTENSION_TAIL.search(prompt)):
        return False
    return not strip_extension_lines(prompt).strip()


def strip_extension_lines(prompt: str) -> str:
    """The prompt without the lines ShareGPT browser extensions appended (`EXTENSION_TAIL`, `LANGUAGE_SUFFIX`)."""
    previous = None
    while previous != prompt:  # "... Please write in English language.지금 번역하기": both, either order
        previous = prompt
        prompt = LANGUAGE_SUFFIX.sub("", EXTENSION_TAIL.sub("", prompt))
    return prompt


def verbatim_ratio(prompt: str, page: str, n: int = 4) -> float:
    grams = set(_ngrams(words(prompt), n))
    if not grams:
        return 0.0
    return len(grams & set(_ngrams(words(page), n))) / len(grams)


def languages_named(text: str) -> set[str]:
    return {name for name, pattern in LANGUAGES.items() if pattern.search(text)}


def page_junk(prompt: str, page: str, kind: str = "page") -> list[str]:
    """The page-dependent junk reasons of `prompt` for `page` that count for a text of this `kind` ('page': all
    of PAGE_REASONS; 'response': all but verbatim, see DEMOTED_REASONS); empty when none."""
    demoted = DEMOTED_REASONS[kind]
    return [r for r in junk_reasons(prompt, page) if r in demoted]


def junk_reasons(prompt: str, page: str) -> list[str]:
    """Every reason the prompt is junk as a guess for `page` (empty: not junk), in REASONS order."""
    reasons = []
    if TEMPLATE.search(prompt) or _only_language_suffix(prompt):
        reasons.append("template")
    if repeated(prompt):
        reasons.append("repetition")
    if URL.search(prompt) and not any(u.rstrip(".,)") in page for u in URL.findall(prompt)):
        reasons.append("url")
    if FENCE in prompt and FENCE not in page:
        reasons.append("code_fence")
    if languages_named(prompt) - languages_named(page):
        reasons.append("language")
    n = len(words(prompt))
    if n >= VERBATIM_MIN_WORDS and verbatim_ratio(prompt, page) >= VERBATIM_RATIO:
        reasons.append("verbatim")
    if n < MIN_WORDS:
        reasons.append("too_short")
    if n > MAX_WORDS:
        reasons.append("too_long")
    return reasons
