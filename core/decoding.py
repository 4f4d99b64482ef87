"""The reference contrastive-search decoder: one configuration, one sequence, written to be obviously right.

Contrastive search (Su et al., 2022), as transformers used to ship it: at each step take the top-k tokens of
p(.|x); run the model one step on each candidate v to get its last hidden state h_v; choose

    argmax_v  (1 - alpha) * p(v|x)  -  alpha * max_j cos(h_v, h_j)

over the hidden states h_j of every earlier position, response included. The chosen candidate's forward
already holds the next step's logits and cache, so nothing is recomputed.

This is deliberately plain (re-encodes the response per configuration, no sharing). The fast sweep in
`core/sweep.py` must give the same tokens; tests and bench/ compare the two.
"""

from __future__ import annotations

import torch

from .hf_compat import cache_kwargs, output_cache


def _last_hidden(outputs) -> torch.Tensor:
    # hidden_states[-1] is the final-norm output: the vector the LM head reads.
    return outputs.hidden_states[-1]


@torch.no_grad()
def contrastive_search(
    model,
    prefix_ids: list[int],
    top_k: int,
    penalty_alpha: float,
    max_new_tokens: int,
    stop_ids: set[int],
) -> list[int]:
    """Generate after `prefix_ids`; returns the new token ids, ending with a stop id if one was chosen."""
    device = next(model.parameters()).device
    input_ids = torch.tensor([prefix_ids], device=device)
    out = model(input_ids=input_ids, use_cache=True, output_hidden_states=True)
    cache = output_cache(out)
    context = _last_hidden(out)[0]  # (T, H): every position seen so far
    logits = out.logits[0, -1].float()
    position = len(prefix_ids)
    generated: list[int] = []
    for _ in range(max_new_tokens):
        probs = torch.softmax(logits, dim=-1)
        top_probs, top_ids = probs.topk(top_k)
        cache.batch_repeat_interleave(top_k)
        step = model(
            input_ids=top_ids[:, None],
            **cache_kwargs(cache),
            position_ids=torch.full((top_k, 1), position, device=device),
            use_cache=True,
            output_hidden_states=True,
        )
        cand_hidden = _last_hidden(step)[:, -1].float()  # (k, H)
        sims = (
            torch.nn.functional.normalize(cand_hidden, dim=-1)
            @ torch.nn.functional.normalize(context.float(), dim=-1).T
        )
        degeneration = sims.max(dim=-1).values
        scores = (1.0 - penalty_alpha) * top_probs - penalty_alpha * degeneration
        best = int(scores.argmax())
        token = int(top_ids[best])
        generated.append(token)
        if token in stop_ids:
            break
        cache = output_cache(step)
        cache.batch_select_indices(torch.tensor([best], device=device))
        context = torch.cat([context, cand_hidden[best : best + 1].to(context.dtype)], dim=0)
        logits = step.logits[best, -1].float()
        position += 1
    return generated


@torch.no_grad()
def greedy(model, prefix_ids: list[int], max_new_tokens: int, stop_ids: set[int]) -> list[int]:
    """Plain greedy decoding, the yardstick for contrastive search's limit cases."""
    device = next(model.parameters()).device
    ids = list(prefix_ids)
    out = model(input_ids=torch.tensor([ids], device=device), use_cache=True)
    cache = output_cache(out)
    generated: list[int] = []
    for _ in range(max_new_tokens):
        token = int(out.logits[0, -1].argmax())
        generated.append(token)
        if token in stop_ids:
            break
        out = model(input_ids=torch.tensor([[token]], device=device), **cache_kwargs(cache), use_cache=True)
        cache = output_cache(out)
    return generated
