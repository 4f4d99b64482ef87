"""Training pairs whose response no longer opens by restating the prompt (an experiment of issue #12, §9 of
docs/model.md).

    python scripts/strip_openings.py runs/clean-v3-gpt4chat.jsonl -o runs/stripped-openings.jsonl

Many assistant answers open with the prompt in other words ("Sure, here is a Bash script that checks the disk
space and emails you ..."). A model trained on them learns to turn the text's first sentence into a question,
which on a web page is the copy the yardstick counts as junk and far from the page's title. This writes, for
every pair whose response opens with a sentence sharing at least half its words with the prompt (token-set F1 >=
0.5) and keeps 30+ words after it, the same pair with that sentence cut: the prompt then has to come from the
content. Pairs that do not restate are left out. Input and output are JSONL with prompt/response/source.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

WORD = re.compile(r"\w+")
# The first sentence: up to a sentence end followed by a space, a line end, or the end of the text.
FIRST_SENTENCE = re.compile(r"(.+?(?:[.!?:](?=\s)|\n|$))", re.S)
MIN_F1, MIN_REST_WORDS = 0.5, 30


def token_f1(a: str, b: str) -> float:
    x, y = set(WORD.findall(a.lower())), set(WORD.findall(b.lower()))
    common = len(x & y)
    if not common:
        return 0.0
    precision, recall = common / len(x), common / len(y)
    return 2 * precision * recall / (precision + recall)


def stripped(prompt: str, response: str) -> str | None:
    """The response without its opening sentence when that sentence restates the prompt, else None."""
    text = response.strip()
    match = FIRST_SENTENCE.match(text)
    if not match:
        return None
    rest = text[match.end() :].strip()
    if token_f1(match.group(1), prompt) < MIN_F1 or len(WORD.findall(rest)) < MIN_REST_WORDS:
        return None
    return rest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pairs", help="a JSONL file of prompt/response pairs")
    parser.add_argument("-o", "--out", required=True)
    args = parser.parse_args()
    read = kept = 0
    with open(args.pairs, encoding="utf-8") as src, open(args.out, "w", encoding="utf-8") as out:
        for line in src:
            if not line.strip():
                continue
            row = json.loads(line)
            read += 1
            rest = stripped(row["prompt"], row["response"])
            if rest is not None:
                kept += 1
                row = {**row, "response": rest, "source": f"{row.get('source', '')}+stripped_opening"}
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{read} pairs read, {kept} with a restating opening written without it to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
