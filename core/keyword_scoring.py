"""Keyword given page: the mean NLL of many prompts (keywords) given many responses (pages), pages in packed groups.

This is the measure that ranks candidates (core/scoring.py: mean NLL per token of the prompt and its closing
EOS, teacher-forced, in the fine-tune format of core/prompt_format.py: `{page}\\n###\\n{keyword}<eos>`, the page
cut to the engine's window), turned around: the prompt is given, the page is what varies. `revprompt match`
(plugins/match.py) re-ranks a MiniLM shortlist with it.

It equals `scoring.score_continuations` (tests/test_match.py checks that) and does less work, which is what
makes matching hundreds of keywords over hundreds of pages affordable on a CPU (bench/bench_match.py):

* Each page prefix is encoded once, through the transformer body only; the 262K-word LM head runs on its last
  position alone (the distribution of every keyword's first token). `score_continuations` runs the head over
  every prefix position, which for a 192-token page costs more than the rest of the prefix.
* Pages go through the model in groups (`score_pages`): the prefixes of several pages as ONE packed sequence
  (no padding; each page's tokens see only that page, causally), then all their keywords as packed sequences
  appended to that cache, each keyword token seeing its own page and its own keyword's earlier tokens only
  (the tree attention of core/sweep.py, one document per page, one branch per keyword; sliding-window layers
  get the window too). Few, large forwards: the per-forward cost (18 layers of small ops, masks) is paid per
  group rather than twice per page, and the matrix products run on hundreds of rows. Padding right-aligned
  batches of keywords of uneven length (score_continuations' way) would run the body on about as many padding
  positions as real ones. The closing EOS is never fed: only predicted.
* The LM head runs only on keyword positions, in chunks of rows, and the log-softmax on a few rows at a time
  (`_picked_logprobs`): the float32 copy of the (rows x 262K) logits stays in the CPU cache instead of making
  several trips through memory, which took a third of the head's time. Same operations, same numbers.

`score_encoded_page_by_page` is the previous path (one page per forward pair, full-chunk log-softmax), kept as
the reference the bench times the batched path against and the tests compare it with.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .hf_compat import cache_kwargs, new_cache
from .prompt_format import encode_prefix, encode_prompt
from .sweep import _doc_blocks, _lm_logprobs
from .tree_attention import using_tree_attention

# Keyword tokens per packed forward.
DEFAULT_MAX_ROWS = 512
# Page-prefix tokens per packed group (the pages whose keywords share the keyword forwards).
GROUP_PREFIX_TOKENS = 1024
# Rows per LM-head call: 64 x 262K bf16 logits is 34 MB; the weight is read once per call.
HEAD_CHUNK = 64
# Rows per float32 log-softmax: 4 x 262K x 4 bytes = 4 MB, which stays in the cache.
SOFTMAX_ROWS = 4

Job = tuple[Sequence[int], Sequence[Sequence[int]]]  # (page prefix ids, continuations each ending with its EOS)


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


def score_encoded(
    model,
    prefix_ids: Sequence[int],
    continuations: Sequence[Sequence[int]],
    max_rows: int = DEFAULT_MAX_ROWS,
    stats: ScoringStats | None = None,
) -> list[float]:
    """`score_keywords` on token ids: each continuation ends with its EOS (`encode_prompt`)."""
    return score_pages(model, [(prefix_ids, continuations)], max_rows=max_rows, stats=stats)[0]


@torch.inference_mode()
def score_pages(
    model,
    jobs: Sequence[Job],
    max_rows: int = DEFAULT_MAX_ROWS,
    group_tokens: int = GROUP_PREFIX_TOKENS,
    stats: ScoringStats | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[list[float]]:
    """Mean NLL per token of each continuation given its page, for many pages: `jobs[i]` is (page i's prefix
    ids, its continuations, each ending with its EOS); the answer's list i holds their scores, in order.

    Pages are taken in order, as many per group as fit in `group_tokens` prefix tokens (at least one); each
    group is one prefix forward and as few keyword forwards of at most `max_rows` tokens as its keywords fill.
    `progress(pages done, pages)` is called after each group."""
    for prefix_ids, continuations in jobs:
        if len(prefix_ids) == 0:
            raise ValueError("a page prefix needs at least one token")
        if any(len(c) == 0 for c in continuations):
            raise ValueError("a continuation needs at least its closing EOS")
    out: list[list[float]] = [[] for _ in jobs]
    todo = [i for i, (_, continuations) in enumerate(jobs) if continuations]
    group: list[int] = []
    tokens = done = 0
    for i in [*todo, -1]:
        if group and (i < 0 or tokens + len(jobs[i][0]) > group_tokens):
            scores = _score_group(model, [jobs[g] for g in group], max_rows, stats)
            for g, values in zip(group, scores):
                out[g] = values
            done += len(group)
            if progress is not None:
                progress(done, len(todo))
            group, tokens = [], 0
        if i >= 0:
            group.append(i)
            tokens += len(jobs[i][0])
    return out


def _score_group(model, group: Sequence[Job], max_rows: int, stats: ScoringStats | None) -> list[list[float]]:
    device = next(model.parameters()).device
    start = time.perf_counter()
    n_docs = len(group)
    lengths = [len(prefix) for prefix, _ in group]
    n_prefix = sum(lengths)
    # 1. The pages' prefixes as one packed sequence: slot s holds page owner[s]'s token at position pos[s]; a
    # token sees the earlier tokens of its own page only. A plain cache (no sliding-window eviction), as in
    # core/sweep.py: the masks implement the window.
    flat = torch.tensor([t for prefix, _ in group for t in prefix], device=device)
    pos = torch.cat([torch.arange(n, device=device) for n in lengths])
    owner = torch.repeat_interleave(torch.arange(n_docs, device=device), torch.tensor(lengths, device=device))
    visible = (owner[:, None] == owner[None, :]) & (pos[None, :] <= pos[:, None])
    blocks = _doc_blocks(model.config, visible, owner, pos, pos, owner, n_docs)
    cache = new_cache(model)
    with using_tree_attention(model):
        hidden = model.model(
            input_ids=flat[None], position_ids=pos[None], attention_mask=blocks, **cache_kwargs(cache), use_cache=True
        ).last_hidden_state[0]
    # log p(first keyword token | page) from each page's last position.
    ends = torch.tensor(lengths, device=device).cumsum(0) - 1
    first_rows = [d for d, (_, continuations) in enumerate(group) for _ in continuations]
    first_targets = [c[0] for _, continuations in group for c in continuations]
    first = _picked_logprobs(model, hidden.index_select(0, ends), first_rows, first_targets).tolist()
    if stats is not None:
        stats.pages += n_docs
        stats.prefix_tokens += n_prefix
        stats.prefix_seconds += time.perf_counter() - start
    start = time.perf_counter()

    totals = [[0.0] * len(continuations) for _, continuations in group]
    at = 0
    for d, (_, continuations) in enumerate(group):
        for j in range(len(continuations)):
            totals[d][j] = first[at]
            at += 1
    # 2. Keywords of one token (just EOS left to predict) need no forward; the others go through in packed
    # forwards of at most max_rows tokens appended to the group's cache.
    batch: list[tuple[int, int]] = []
    rows = 0
    for d, (_, continuations) in enumerate(group):
        for j, c in enumerate(continuations):
            if len(c) < 2:
                continue
            if batch and rows + len(c) - 1 > max_rows:
                _score_packed(model, cache, group, lengths, owner, pos, batch, totals, device)
                batch, rows = [], 0
            batch.append((d, j))
            rows += len(c) - 1
    if batch:
        _score_packed(model, cache, group, lengths, owner, pos, batch, totals, device)
    if stats is not None:
        stats.pairs += sum(len(continuations) for _, continuations in group)
        stats.keyword_rows += sum(len(c) - 1 for _, continuations in group for c in continuations)
        stats.keyword_seconds += time.perf_counter() - start
    return [
        [-total / len(c) for total, c in zip(page_totals, continuations)]
        for page_totals, (_, continuations) in zip(totals, group)
    ]


def _score_packed(
    model,
    cache,
    group: Sequence[Job],
    lengths: list[int],
    prefix_owner: torch.Tensor,
    prefix_pos: torch.Tensor,
    batch: list[tuple[int, int]],
    totals: list[list[float]],
    device,
) -> None:
    """Add to `totals[d][j]` the log-probabilities of tokens 2.. and EOS of continuation j of page d, for each
    (d, j) in `batch`.

    The continuations' tokens (all but their EOS) go through the model as ONE sequence appended to the group's
    cache, without padding: each token sees its page's prefix and the tokens of its own continuation before it,
    at its true position after its page. The appended cache entries are dropped afterwards.
    """
    chunk = [group[d][1][j] for d, j in batch]
    widths = [len(c) - 1 for c in chunk]
    n_rows = sum(widths)
    n_prefix = len(prefix_owner)
    flat = torch.tensor([t for c in chunk for t in c[:-1]], device=device)
    segment = torch.repeat_interleave(torch.arange(len(chunk), device=device), torch.tensor(widths, device=device))
    step = torch.cat([torch.arange(w, device=device) for w in widths])  # token index within its continuation
    row_doc = torch.tensor([d for d, _ in batch], device=device)[segment]
    positions = torch.tensor(lengths, device=device)[row_doc] + step
    visible = torch.cat(
        [
            row_doc[:, None] == prefix_owner[None, :],  # its own page
            (segment[:, None] == segment[None, :]) & (step[None, :] <= step[:, None]),  # its own keyword, causally
        ],
        dim=1,
    )
    slot_owner = torch.cat([prefix_owner, row_doc])
    key_positions = torch.cat([prefix_pos, positions])
    blocks = _doc_blocks(model.config, visible, slot_owner, key_positions, positions, row_doc, len(group))
    try:
        with using_tree_attention(model):
            hidden = model.model(
                input_ids=flat[None],
                position_ids=positions[None],
                attention_mask=blocks,
                **cache_kwargs(cache),
                use_cache=True,
            ).last_hidden_state[0]  # (R, H): row t predicts t+1
    finally:
        for layer in cache.layers:  # back to the pages alone for the next batch
            layer.keys = layer.keys[..., :n_prefix, :]
            layer.values = layer.values[..., :n_prefix, :]
    targets = [t for c in chunk for t in c[1:]]
    picked = _picked_logprobs(model, hidden, range(n_rows), targets)
    sums = torch.zeros(len(chunk), dtype=torch.float32, device=device)
    sums.index_add_(0, segment, picked)
    for (d, j), total in zip(batch, sums.tolist()):
        totals[d][j] += total


def _picked_logprobs(model, hidden: torch.Tensor, rows: Sequence[int], targets: Sequence[int]) -> torch.Tensor:
    """log p(targets[i] | hidden[rows[i]]) under the LM head, `rows` ascending: `_lm_logprobs` (softcap, float32
    log-softmax) one few-row block at a time, so the (rows x vocabulary) float32 log-probabilities are never
    all in memory at once."""
    device = hidden.device
    row_list = list(rows)
    target_t = torch.tensor(list(targets), dtype=torch.long, device=device)
    row_t = torch.tensor(row_list, dtype=torch.long, device=device)
    out = torch.empty(len(row_list), dtype=torch.float32, device=device)
    softcap = getattr(model.config, "final_logit_softcapping", None)
    for s in range(0, hidden.shape[0], HEAD_CHUNK):
        lo, hi = bisect_left(row_list, s), bisect_left(row_list, s + HEAD_CHUNK)
        if lo == hi:
            continue
        logits = model.lm_head(hidden[s : s + HEAD_CHUNK])
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        for b in range(0, logits.shape[0], SOFTMAX_ROWS):
            a, z = bisect_left(row_list, s + b, lo, hi), bisect_left(row_list, s + b + SOFTMAX_ROWS, lo, hi)
            if a == z:
                continue
            logprobs = torch.log_softmax(logits[b : b + SOFTMAX_ROWS], dim=-1, dtype=torch.float32)
            out[a:z] = logprobs[row_t[a:z] - (s + b), target_t[a:z]]
    return out


# -- the previous path --------------------------------------------------------------------------------------------
@torch.inference_mode()
def score_encoded_page_by_page(
    model,
    prefix_ids: list[int],
    continuations: Sequence[list[int]],
    max_rows: int = 384,
    stats: ScoringStats | None = None,
) -> list[float]:
    """The previous path, one page at a time (a prefix forward, then its keywords packed, the log-softmax over
    64-row chunks): the same scores as `score_encoded`, kept as the reference bench/bench_match.py times the
    batched path against."""
    if not continuations:
        return []
    if any(len(c) == 0 for c in continuations):
        raise ValueError("a continuation needs at least its closing EOS")
    device = next(model.parameters()).device
    body = model.model  # transformer body, final norm included; no LM head
    start = time.perf_counter()
    cache = new_cache(model)
    out = body(input_ids=torch.tensor([prefix_ids], device=device), **cache_kwargs(cache), use_cache=True)
    first = _lm_logprobs(model, out.last_hidden_state[0, -1])  # (V,): log p(first keyword token | page)
    n_prefix = len(prefix_ids)
    if stats is not None:
        stats.pages += 1
        stats.prefix_tokens += n_prefix
        stats.prefix_seconds += time.perf_counter() - start
    start = time.perf_counter()

    totals = [float(first[c[0]]) for c in continuations]
    batch: list[int] = []
    rows = 0
    for i in (i for i, c in enumerate(continuations) if len(c) > 1):
        width = len(continuations[i]) - 1
        if batch and rows + width > max_rows:
            _score_packed_page(model, cache, n_prefix, [continuations[j] for j in batch], batch, totals, device)
            batch, rows = [], 0
        batch.append(i)
        rows += width
    if batch:
        _score_packed_page(model, cache, n_prefix, [continuations[j] for j in batch], batch, totals, device)
    if stats is not None:
        stats.pairs += len(continuations)
        stats.keyword_rows += sum(len(c) - 1 for c in continuations)
        stats.keyword_seconds += time.perf_counter() - start
    return [-total / len(c) for total, c in zip(totals, continuations)]


def _score_packed_page(
    model, cache, n_prefix: int, chunk: list[list[int]], index: list[int], totals: list[float], device
) -> None:
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
                input_ids=flat[None],
                position_ids=positions[None],
                attention_mask=blocks,
                **cache_kwargs(cache),
                use_cache=True,
            ).last_hidden_state[0]
    finally:
        for layer in cache.layers:
            layer.keys = layer.keys[..., :n_prefix, :]
            layer.values = layer.values[..., :n_prefix, :]
    targets = torch.tensor([c[t + 1] for c in chunk for t in range(len(c) - 1)], device=device)
    picked = torch.empty(n_rows, dtype=torch.float32, device=device)
    for s in range(0, n_rows, 64):
        logprobs = _lm_logprobs(model, hidden[s : s + 64])
        picked[s : s + 64] = logprobs.gather(1, targets[s : s + 64, None])[:, 0]
    owners = torch.tensor([b for b, length in enumerate(lengths) for _ in range(length)], device=device)
    sums = torch.zeros(len(chunk), dtype=torch.float32, device=device)
    sums.index_add_(0, owners, picked)
    for b, total in enumerate(sums.tolist()):
        totals[index[b]] += total
