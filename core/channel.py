"""Channel re-ranking (`--rerank channel`): among the best candidates by perplexity, prefer the one that best
predicts the text.

Perplexity asks how likely a prompt is given the response, under the fine-tuned model; that favours short,
generic prompts the model writes easily. The channel score asks the other way round: how likely are the
response's first tokens after the prompt, under the *base* model (no adapter: it has seen none of our training
pairs, and it is not the MiniLM model the evaluation measures with). A prompt that names what the text is about
makes its opening cheaper; a generic one does not. log P(response) is the same for every candidate of a text, so
ranking by log P(response | prompt) is ranking by how much the prompt tells about the response.

The combined score is -log(perplexity) + weight * channel, over the first `top` candidates by perplexity only
(the rest keep their order behind them). docs/model.md §13 has the study behind the defaults.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .types import Candidate

DEFAULT_WEIGHT = 1.0
DEFAULT_TOP = 5
DEFAULT_RESPONSE_TOKENS = 64
HEAD_ROWS = 256  # rows per LM-head block: 256 x 262K float32 logits is 268 MB at the peak
SEPARATOR = "\n\n"  # prompt, blank line, response: how a plain language model sees a question and its answer


def channel_scores(
    model, tokenizer, prompts: Sequence[str], response: str, response_tokens: int = DEFAULT_RESPONSE_TOKENS
) -> list[float]:
    """Mean log-probability of the response's first `response_tokens` tokens after each prompt.

    One right-padded batch; only the positions that predict response tokens go through the LM head (on a
    262K-word vocabulary that head is most of the cost). Works with revprompt's own Gemma 3 module and with
    transformers' (both have `.model`, `.lm_head` and the config's logit soft-cap)."""
    if not prompts:
        return []
    r_ids = tokenizer(response, add_special_tokens=False)["input_ids"][:response_tokens]
    if not r_ids:
        return [0.0] * len(prompts)
    heads = [
        [tokenizer.bos_token_id] + tokenizer(p.strip() + SEPARATOR, add_special_tokens=False)["input_ids"]
        for p in prompts
    ]
    device = next(model.parameters()).device
    width = max(len(h) for h in heads) + len(r_ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(heads), width), pad, dtype=torch.long, device=device)
    mask = torch.zeros((len(heads), width), dtype=torch.long, device=device)
    for i, head in enumerate(heads):
        seq = head + r_ids
        ids[i, : len(seq)] = torch.tensor(seq, device=device)
        mask[i, : len(seq)] = 1
    softcap = getattr(model.config, "final_logit_softcapping", None)
    with torch.inference_mode():
        hidden = model.model(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        # The rows that predict response tokens, all prompts together: the head runs on few large blocks.
        rows = torch.cat([hidden[i, len(h) - 1 : len(h) - 1 + len(r_ids)] for i, h in enumerate(heads)])
        targets = torch.tensor(r_ids * len(heads), device=device)
        logprobs = []
        for start in range(0, rows.shape[0], HEAD_ROWS):
            logits = model.lm_head(rows[start : start + HEAD_ROWS]).float()
            if softcap:
                logits = torch.tanh(logits / softcap) * softcap
            block = targets[start : start + HEAD_ROWS].unsqueeze(1)
            logprobs.append(torch.log_softmax(logits, -1).gather(1, block).squeeze(1))
        per_token = torch.cat(logprobs).view(len(heads), len(r_ids))
    scores = [float(x) for x in per_token.mean(1)]
    return scores


def rerank(
    candidates: list[Candidate],
    model,
    tokenizer,
    response: str,
    weight: float = DEFAULT_WEIGHT,
    top: int = DEFAULT_TOP,
    response_tokens: int = DEFAULT_RESPONSE_TOKENS,
    keep_last: set[int] | None = None,
) -> list[Candidate]:
    """`candidates` (in perplexity order) with the first `top` re-ordered by -log ppl + weight * channel.

    Candidates whose id() is in `keep_last` (page junk the engine demotes) are neither scored nor moved. Each
    scored candidate gets its `channel` score."""
    keep_last = keep_last or set()
    head = [c for c in candidates if id(c) not in keep_last][:top]
    if len(head) < 2:
        return candidates
    for cand, score in zip(head, channel_scores(model, tokenizer, [c.prompt for c in head], response, response_tokens)):
        cand.channel = score
    chosen = {id(c) for c in head}
    ordered = sorted(head, key=lambda c: -(-math.log(c.perplexity) + weight * (c.channel or 0.0)))
    rest = [c for c in candidates if id(c) not in chosen]
    return ordered + rest
