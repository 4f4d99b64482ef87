"""Keyword given page: the mean NLL of many prompts (keywords) given one response (a page), page by page.

This is the measure that ranks candidates (core/scoring.py: mean NLL per token of the prompt and its closing
EOS, teacher-forced, in the fine-tune format of core/prompt_format.py: `{page}\\n###\\n{keyword}<eos>`, the page
cut to the engine's window), turned around: the prompt is given, the page is what varies. `revprompt match`
(plugins/match.py) re-ranks a MiniLM shortlist with it.

It equals `scoring.score_continuations` (tests/test_match.py checks that) and does less work, which is what
makes matching hundreds of keywords over hundreds of pages affordable on a CPU:

* The page prefix is encoded once, through the transformer body only; the 262K-word LM head runs on its last
  position alone (the distribution of every keyword's first token). `score_continuations` runs the head over
  every prefix position, which for a 192-token page costs more than the rest of the prefix.
* The page's keywords go through the model together as one packed sequence appended to the page's cache, with
  no padding and no copy of the cache: a mask lets each keyword token see the page and its own keyword's earlier
  tokens only (the tree attention of core/sweep.py, one branch per keyword; sliding-window layers get the
  window too). Padding right-aligned batches of keywords of uneven length (score_continuations' way) would
  run the body on about as many padding positions as real ones. The closing EOS is never fed: only predicted.
* The LM head runs only on keyword positions, in chunks, so the (rows x 262K) logits never grow past a few
  hundred MB.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .prompt_format import encode_prefix, encode_prompt
from .sweep import _doc_blocks, _lm_logprobs
from .tree_attention import using_tree_attention

# Keyword tokens per packed forward.
DEFAULT_MAX_ROWS = 384
# Rows per LM-head call: 64 x 262K float32 logits is 67 MB.
HEAD_CHUNK = 64


@dataclass
class ScoringStats:
    """Where the time went, for benchmarks (bench/bench_match.py) and `--verbose`."""

    pages: int = 0
    prefix_tokens: int = 0
    prefix_seconds: float = 0.0
    keyword_rows: int = 0  # keyword tokens fed through the model (EOS excluded)
    pairs: int = 0
    keyword_seconds: float = 0.0

    def add(self, other: ScoringStats) -> None:
        for name in ("pages", "prefix_tokens", "prefix_seconds", "keyword_rows", "pairs", "keyword_seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@torch.inference_mode()
def score_keywords(
    model,
    tokenizer,
    page: str,
    keywords: Sequence[str],
    max_input_tokens: int | None,
    max_keyword_tokens: int | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    stats: ScoringStats | None = None,
) -> list[float]:
    """Mean NLL per token (keyword tokens and the closing EOS) of each keyword as the prompt given `page`."""
    prefix = encode_prefix(tokenizer, page, max_input_tokens)
    continuations = [encode_prompt(tokenizer, k, max_keyword_tokens) for k in keywords]
    return score_encoded(model, prefix.ids, continuations, max_rows, stats)


@torch.inference_mode()
def score_encoded(
    model,
    prefix_ids: list[int],
    continuations: Sequence[list[int]],
    max_rows: int = DEFAULT_MAX_ROWS,
    stats: ScoringStats | None = None,
) -> list[float]:
    """`score_keywords` on token ids: each continuation ends with its EOS (`encode_prompt`)."""
    from transformers import DynamicCache

    if not continuations:
        return []
    if any(len(c) == 0 for c in continuations):
        raise ValueError("a continuation needs at least its closing EOS")
    device = next(model.parameters()).device
    body = model.model  # transformer body, final norm included; no LM head
    start = time.perf_counter()
    # A plain cache (no sliding-window eviction), as in core/sweep.py: the masks implement the window.
    cache = DynamicCache()
    out = body(input_ids=torch.tensor([prefix_ids], device=device), cache=cache, use_cache=True)
    first = _lm_logprobs(model, out.last_hidden_state[0, -1])  # (V,): log p(first keyword token | page)
    n_prefix = len(prefix_ids)
    if stats is not None:
        stats.pages += 1
        stats.prefix_tokens += n_prefix
        stats.prefix_seconds += time.perf_counter() - start
    start = time.perf_counter()

    totals = [float(first[c[0]]) for c in continuations]
    # Keywords of one token (just EOS left to predict) need no forward at all; the others go through in packed
    # batches of at most max_rows tokens.
    batch: list[int] = []
    rows = 0
    for i in (i for i, c in enumerate(continuations) if len(c) > 1):
        width = len(continuations[i]) - 1
        if batch and rows + width > max_rows:
            _score_packed(model, cache, n_prefix, [continuations[j] for j in batch], batch, totals, device)
            batch, rows = [], 0
        batch.append(i)
        rows += width
    if batch:
        _score_packed(model, cache, n_prefix, [continuations[j] for j in batch], batch, totals, device)
    if stats is not None:
        stats.pairs += len(continuations)
        stats.keyword_rows += sum(len(c) - 1 for c in continuations)
        stats.keyword_seconds += time.perf_counter() - start
    return [-total / len(c) for total, c in zip(totals, continuations)]


def _score_packed(
    model, cache, n_prefix: int, chunk: list[list[int]], index: list[int], totals: list[float], device
) -> None:
    """Add to `totals[index[b]]` the log-probabilities of tokens 2.. and EOS of each continuation in `chunk`.

    The continuations' tokens (all but their EOS) go through the model as ONE sequence appended to the page's
    cache, without padding: a visibility mask lets each token see the page and the tokens of its own
    continuation before it, and position ids give each its true position after the page (the tree attention of
    core/sweep.py, with one branch per keyword). The appended cache entries are dropped afterwards.
    """
    fed = [c[:-1] for c in chunk]
    lengths = [len(f) for f in fed]
    n_rows = sum(lengths)
    flat = torch.tensor([t for f in fed for t in f], device=device)
    positions = torch.tensor([n_prefix + t for f in fed for t in range(len(f))], device=device)
    visible = torch.zeros((n_rows, n_prefix + n_rows), dtype=torch.bool, device=device)
    visible[:, :n_prefix] = True
    row = 0
    for length in lengths:
        visible[row : row + length, n_prefix + row : n_prefix + row + length] = torch.ones(
            (length, length), dtype=torch.bool, device=device
        ).tril()
        row += length
    key_positions = torch.cat([torch.arange(n_prefix, device=device), positions])
    owner = torch.zeros(n_prefix + n_rows, dtype=torch.long, device=device)  # one document: the page
    blocks = _doc_blocks(model.config, visible, owner, key_positions, positions, owner[:n_rows], 1)
    try:
        with using_tree_attention(model):
            hidden = model.model(
                input_ids=flat[None], position_ids=positions[None], attention_mask=blocks, cache=cache, use_cache=True
            ).last_hidden_state[0]  # (R, H): row t predicts t+1
    finally:
        for layer in cache.layers:  # back to the page alone for the next batch
            layer.keys = layer.keys[..., :n_prefix, :]
            layer.values = layer.values[..., :n_prefix, :]
    targets = torch.tensor([c[t + 1] for c in chunk for t in range(len(c) - 1)], device=device)
    picked = torch.empty(n_rows, dtype=torch.float32, device=device)
    for s in range(0, n_rows, HEAD_CHUNK):
        logprobs = _lm_logprobs(model, hidden[s : s + HEAD_CHUNK])
        picked[s : s + HEAD_CHUNK] = logprobs.gather(1, targets[s : s + HEAD_CHUNK, None])[:, 0]
    owners = torch.tensor([b for b, length in enumerate(lengths) for _ in range(length)], device=device)
    sums = torch.zeros(len(chunk), dtype=torch.float32, device=device)
    sums.index_add_(0, owners, picked)
    for b, total in enumerate(sums.tolist()):
        totals[index[b]] += total
