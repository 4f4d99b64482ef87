"""Page-like training pairs from a documentation site's HTML, without a generator.

Why: the model learned from chat pairs, where the prompt is a user's request and the response an assistant's
answer. SEO users feed it web pages, and for a page the prompt that "produced" it is a request for its topic;
the chat data has almost no such pairs (249 of clean-v3's 38,384), so on pages the model drifted away from
the topic (docs/model.md, the web yardstick). A documentation site supplies both halves: each page's text,
read exactly as revprompt reads any web page (`sources.extract.extract_page`, the title heading removed as in
the yardstick), and its title, which says what the page is about. The prompt is a request for that topic,
phrased by one of a few templates (chosen by the title's shape, seeded, so a rebuild gives the same pairs).

A page also yields pairs for its first sections (`## ` headings), each with the section heading as the
topic: the model reads only the first 128 tokens, so a section start is another page start.

Build the HTML with any static-site tool; `docs/model.md` says how the committed set was made (Sphinx over the
sdists' own documentation sources).
"""

from __future__ import annotations

import html as html_lib
import json
import random
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from ..core.errors import UserError

SKIP_FILES = {"genindex.html", "search.html", "py-modindex.html", "np-modindex.html", "modindex.html"}
SKIP_TITLES = re.compile(
    r"^(index|glossary|changelog|change ?log|changes|release notes|history|license|licen[cs]e.*|authors?|"
    r"contributors|credits|indices and tables|table of contents|contents|search|api|api reference|"
    r"module index|python module index|.*release notes.*|news|what'?s new.*)$",
    re.I,
)
GENERIC_HEADING = re.compile(
    r"^(a |an |the )?(gentle |quick |brief |short |full )?(introduction|overview|summary|examples?|usage|notes?|"
    r"conclusion|background|motivation|details|basics|next steps|what now\??|see also|further reading|"
    r"more information|references?|discussion|caveats|limitations|tl;?dr|synopsis|description|options|"
    r"arguments|parameters|returns|configuration|settings|example usage|getting started|prerequisites|setup|"
    r"installation|requirements|troubleshooting|faq|questions|warning|important|todo|rule details)$",
    re.I,
)
MIN_CHARS = 400
MAX_SECTIONS = 3


@dataclass
class DocPair:
    prompt: str
    response: str
    source: str  # "docs:<project>"
    title: str
    file: str
    kind: str = "page"  # trained with the page separator (training/data.py)


def page_title(html: str) -> str | None:
    """The page's own heading: the first <h1>, as the yardstick's index takes it, without markup."""
    m = re.search(r"<h1[^>]*>(.*?)</h1>", html, re.S | re.I)
    if not m:
        return None
    text = re.sub(r"<[^>]+>", "", m.group(1))
    text = html_lib.unescape(text).replace("\u00b6", "").replace("#", "")
    return " ".join(text.split()) or None


def _clean_heading(line: str) -> str:
    return " ".join(line.lstrip("#").replace("\u00b6", "").split())


def sections(markdown: str) -> list[tuple[str, str]]:
    """(heading, text) of each `## ` section, text up to the next heading of the same level or above."""
    out: list[tuple[str, str]] = []
    lines = markdown.splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"^## \S", line)]
    for n, i in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        out.append((_clean_heading(lines[i]), "\n".join(lines[i + 1 : end]).strip()))
    return out


def _usable_title(title: str) -> bool:
    words = title.split()
    return 1 <= len(words) <= 14 and not SKIP_TITLES.match(title.strip()) and len(title) <= 100


_VERBISH = re.compile(r"^(how to|how do|\w+ing)\b", re.I)
_VERSION = re.compile(r"\b\d+\.\d+")
VISIBLE_CHARS = 600  # about the 128 tokens the model reads


def names_project(text: str, project: str) -> bool:
    """Whether the text the model will read names the project: a prompt may only say what the model can see,
    or it learns to guess a name from the training sites (it did: "... in mypyc" on Rust pages)."""
    return bool(project) and re.search(rf"(?<!\w){re.escape(project)}(?!\w)", text[:VISIBLE_CHARS], re.I) is not None


_FUNCTION_WORDS = set(
    "a an the how to do does did i we you it its this that these those what why when where which who is are be can "
    "should use using used of in on at for with and or not my your our first next more".split()
)


def usable_topic(title: str) -> bool:
    """A title that says what its text is about: not a version, a changelog, an index, a bare 'Overview' or
    a question with no subject of its own ("How to use it?")."""
    content = [w for w in re.findall(r"[\w-]+", title.lower()) if w not in _FUNCTION_WORDS]
    return (
        _usable_title(title)
        and bool(content)
        and not GENERIC_HEADING.match(title.strip())
        and not _VERSION.search(title)
    )


def topic_case(title: str, text: str = "", keep: str = "") -> str:
    """A Title Case heading as a user would type it in a request: "Abstract Base Classes" -> "abstract base
    classes". A capitalised word stays so when it looks like a name: the text writes it capitalised after a
    lower-case word and never in lower case ("Django", "Rust"), or it is `keep` (the project). Acronyms,
    code and mixed-case words (CMAC, WebSupport, `Vec<T>`) are left alone."""
    out = []
    for word in title.split():
        core = word.strip("()[]{},.:;!?\"'`")
        plain = core.isalpha() and core[:1].isupper() and core[1:].islower()
        if not plain or core == keep or core == "I":
            out.append(word)
            continue
        lower = core.lower()
        named = re.search(rf"[a-z,;] {re.escape(core)}(?!\w)", text) and not re.search(
            rf"(?<![\w-]){re.escape(lower)}(?![\w-])", text
        )
        out.append(word if named else word.replace(core, lower, 1))
    return " ".join(out)


def topic_prompt(title: str, project: str, rng: random.Random, text: str = "") -> str:
    """A short request for the page's topic, as a user would ask an assistant for that page. The project is
    named only where `text` names it; the templates are short so the topic, not the phrasing, carries it."""
    t = title.rstrip(".:")
    lower = topic_case(t, text, keep=project)
    upper = lower[:1].upper() + lower[1:]
    p = project if names_project(text, project) and rng.random() < 0.7 else ""
    in_p = f" in {p}" if p else ""
    if title.rstrip().endswith("?"):
        q = lower.rstrip().rstrip("?")
        choices = [f"{q[:1].upper() + q[1:]}{in_p}?", f"Explain: {q}{in_p}?"]
    elif _VERBISH.match(t):
        if t.lower().startswith(("how to", "how do")):
            choices = [f"{upper}{in_p}?", f"Explain {lower}{in_p}.", f"Write a guide: {lower}{in_p}."]
        else:
            choices = [f"Write a guide to {lower}{in_p}.", f"Explain {lower}{in_p}.", f"Write about {lower}{in_p}."]
    else:
        choices = [
            f"Explain {lower}{in_p}.",
            f"What is {lower}{in_p}?",
            f"Write about {lower}{in_p}.",
            f"Describe {lower}{in_p}.",
            f"Write a guide to {lower}{in_p}.",
            f"How does {lower} work{in_p}?",
            f"Write a documentation page about {lower}{in_p}.",
        ]
    return rng.choice(choices)


def pair_rng(seed: int, project: str, file: str, title: str) -> random.Random:
    """One generator per pair, so a pair's prompt does not depend on which pairs came before it."""
    return random.Random(f"{seed}:{project}:{file}:{title}")


def pairs_from_site(site: Path, project: str, seed: int = 0, max_sections: int = MAX_SECTIONS) -> Iterator[DocPair]:
    """The pairs of one built documentation site (a folder of HTML pages), in file order."""
    from ..sources.extract import extract_page
    from ..training.web_eval import strip_title

    if not site.is_dir():
        raise UserError(f"not a folder of HTML pages: {site}")
    for path in sorted(site.rglob("*.html")):
        rel = path.relative_to(site).as_posix()
        if path.name in SKIP_FILES or any(part.startswith("_") for part in path.relative_to(site).parts):
            continue
        raw = path.read_text(encoding="utf-8", errors="replace")
        title = page_title(raw)
        if not title or not _usable_title(title):
            continue
        text = strip_title(extract_page(raw).markdown, title).strip()
        if usable_topic(title) and len(text) >= MIN_CHARS:
            prompt = topic_prompt(title, project, pair_rng(seed, project, rel, title), text)
            yield DocPair(prompt, text, f"docs:{project}", title, rel)
        for heading, body in sections(text)[:max_sections]:
            if usable_topic(heading) and len(body) >= MIN_CHARS:
                prompt = topic_prompt(heading, project, pair_rng(seed, project, rel, heading), body)
                yield DocPair(prompt, body, f"docs:{project}", heading, rel)


def dedup(pairs: list[DocPair], chars: int = 300) -> list[DocPair]:
    """Pairs whose response starts like an earlier one's dropped: sites repeat boilerplate pages."""
    seen: set[str] = set()
    kept = []
    for pair in pairs:
        key = " ".join(pair.response[:chars].split())
        if key not in seen:
            seen.add(key)
            kept.append(pair)
    return kept


def write_pairs(pairs: list[DocPair], out: Path) -> int:
    with out.open("w", encoding="utf-8") as fh:
        for pair in pairs:
            fh.write(json.dumps(asdict(pair), ensure_ascii=False) + "\n")
    return len(pairs)
