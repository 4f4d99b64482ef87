"""Perplexity of a prompt given a response: the ranking signal, and the pair-consistency score."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .hf_compat import cache_kwargs, output_cache


@dataclass
class PromptScore:
    token_ids: list[int]  # prompt tokens and the closing EOS
    token_probs: list[float]
    mean_nll: float
    perplexity: float


def _finish(token_ids: list[int], logprobs: list[float]) -> PromptScore:
    mean_nll = -sum(logprobs) / max(len(logprobs), 1)
    return PromptScore(token_ids, [math.exp(lp) for lp in logprobs], mean_nll, math.exp(mean_nll))


@torch.no_grad()
def score_continuations(
    model, prefix_ids: list[int], continuations: list[list[int]], batch_size: int = 16
) -> list[PromptScore]:
    """Mean NLL of each continuation's tokens given the prefix, teacher-forced.

    The prefix is encoded once; its cache is repeated across a batch of continuations (right-padded, the
    padding never attends back into real tokens because it comes after them).
    """
    if not continuations:
        return []
    device = next(model.parameters()).device
    prefix = torch.tensor([prefix_ids], device=device)
    out = model(input_ids=prefix, use_cache=True)
    first_logprobs = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
    results: list[PromptScore] = []
    for start in range(0, len(continuations), batch_size):
        chunk = continuations[start : start + batch_size]
        width = max(len(c) for c in chunk)
        batch = torch.zeros((len(chunk), width), dtype=torch.long, device=device)
        for i, c in enumerate(chunk):
            batch[i, : len(c)] = torch.tensor(c)
        cache = _copy_cache(output_cache(out), len(chunk))
        positions = torch.arange(len(prefix_ids), len(prefix_ids) + width, device=device).expand(len(chunk), -1)
        step = model(input_ids=batch, **cache_kwargs(cache), position_ids=positions, use_cache=True)
        logprobs = torch.log_softmax(step.logits.float(), dim=-1)  # (B, W, V): predicts token t+1
        for i, c in enumerate(chunk):
            lps = [float(first_logprobs[c[0]])]
            lps += [float(logprobs[i, t, c[t + 1]]) for t in range(len(c) - 1)]
            results.append(_finish(c, lps))
    return results


def _copy_cache(cache, repeats: int):
    import copy

    clone = copy.deepcopy(cache)
    clone.batch_repeat_interleave(repeats)
    return clone
