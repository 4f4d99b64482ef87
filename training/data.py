"""Training data: read (prompt, response) pairs and tokenise them as `{response}\\n###\\n{prompt}<eos>`.

Loss is on the prompt only: labels are -100 over the response and the separator. A pair whose `kind` is
"page" (a web page and a request for its topic: `revprompt datagen doc-pages`) takes the page separator
instead (core/prompt_format.py PAGE_SEPARATOR), as the engine reads pages with an adapter trained so.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import UserError
from ..core.prompt_format import PAGE_SEPARATOR, SEPARATOR, encode_prefix

IGNORE_INDEX = -100


@dataclass
class Pair:
    prompt: str
    response: str
    source: str = ""
    kind: str = "response"  # or "page": read with the page separator


def has_pages(pairs: Iterable[Pair]) -> bool:
    return any(p.kind == "page" for p in pairs)


def read_pairs(
    paths: Iterable[str | Path], prompt_field: str = "prompt", response_field: str = "response"
) -> list[Pair]:
    """Pairs from JSONL files (or a `datagen` DuckDB table given as `DB.duckdb::table`). Bad lines are skipped.

    `FILE@N` takes a seeded random sample of N pairs from FILE, to set the mix of several sources.
    """
    pairs: list[Pair] = []
    for raw in paths:
        raw = str(raw)
        sample = None
        if "@" in raw and raw.rsplit("@", 1)[1].isdigit():
            raw, n = raw.rsplit("@", 1)
            sample = int(n)
            pairs.extend(sample_mix(read_pairs([raw], prompt_field, response_field), sample, seed=len(pairs)))
            continue
        if "::" in raw:
            pairs.extend(_pairs_from_duckdb(raw))
            continue
        path = Path(raw)
        if not path.exists():
            raise UserError(f"no such file: {path}")
        with path.open(encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                prompt, response = row.get(prompt_field), row.get(response_field)
                if isinstance(prompt, str) and isinstance(response, str) and prompt.strip() and response.strip():
                    kind = "page" if row.get("kind") == "page" else "response"
                    pairs.append(Pair(prompt.strip(), response.strip(), row.get("source", path.stem), kind))
    if not pairs:
        raise UserError("no usable (prompt, response) pairs in the given files")
    return pairs


def _pairs_from_duckdb(spec: str) -> list[Pair]:
    from ..core.store import Store

    db, table = spec.split("::", 1)
    with Store(db, read_only=True) as store:
        cols, rows = store.query(
            f'SELECT prompt, response FROM "{table}" WHERE prompt IS NOT NULL AND response IS NOT NULL'
        )
    return [Pair(p, r, table) for p, r in rows]


def sample_mix(pairs: list[Pair], limit: int | None, seed: int = 0) -> list[Pair]:
    rng = random.Random(seed)
    pairs = list(pairs)
    rng.shuffle(pairs)
    return pairs[:limit] if limit else pairs


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]


def tokenize_pairs(
    tokenizer,
    pairs: list[Pair],
    max_seq_len: int = 2048,
    max_response_tokens: int | None = None,
    max_prompt_tokens: int = 256,
    batch_size: int = 256,
) -> list[Example]:
    """Tokenise in batches (the fast tokenizer parallelises a batch); responses are cut to fit the cap."""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    separators = {
        kind: encode_prefix(tokenizer, "", separator=text).ids[len(bos) :]
        for kind, text in (("response", SEPARATOR), ("page", PAGE_SEPARATOR))
    }
    examples: list[Example] = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        responses = tokenizer([p.response for p in chunk], add_special_tokens=False)["input_ids"]
        prompts = tokenizer([p.prompt for p in chunk], add_special_tokens=False)["input_ids"]
        for pair, r_ids, p_ids in zip(chunk, responses, prompts):
            sep_ids = separators["page" if pair.kind == "page" else "response"]
            p_ids = p_ids[:max_prompt_tokens] + [tokenizer.eos_token_id]
            room = max_seq_len - len(bos) - len(sep_ids) - len(p_ids)
            if max_response_tokens is not None:
                room = min(room, max_response_tokens)
            if room <= 0:
                continue
            prefix = bos + r_ids[:room] + sep_ids
            examples.append(Example(prefix + p_ids, [IGNORE_INDEX] * len(prefix) + p_ids))
    return examples


def batches(examples: list[Example], batch_size: int, pad_id: int, seed: int = 0) -> Iterator[dict]:
    """Length-bucketed, shuffled batches: similar lengths together waste less compute on padding."""
    rng = random.Random(seed)
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    groups = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(groups)
    for group in groups:
        yield collate([examples[i] for i in group], pad_id)


def collate(examples: list[Example], pad_id: int) -> dict:
    """One padded batch (right padding): input_ids, labels (-100 off the prompt) and attention_mask."""
    import torch

    width = max(len(ex.input_ids) for ex in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, ex in enumerate(examples):
        n = len(ex.input_ids)
        ids[row, :n] = torch.tensor(ex.input_ids)
        labels[row, :n] = torch.tensor(ex.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}
