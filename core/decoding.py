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


def beam_step(
    beams: list[tuple[list[int], list[float]]],
    tops: list[tuple[list[int], list[float], float]],
    width: int,
    stop_ids: set[int],
    eos_id: int,
) -> tuple[list[tuple[int, int, float]], list[tuple[list[int], list[float]]]]:
    """One step of beam search, shared by the reference below and the fast sweep so both choose alike.

    `beams`: each live beam's tokens and their log-probabilities; `tops`: each beam's top next tokens (in rank
    order) with their log-probabilities and log p(EOS). Every (beam, token) expansion scores the beam's summed
    log-probability plus the token's; walking them best first (ties: the lower token sequence), a stop token
    finishes its beam as a hypothesis (scored with EOS, as the ranker scores any stop token; none from the
    empty beam: an empty prompt is no candidate), and the first `width` others are the next beams. Returns
    those as (beam index, token, log-prob) and the hypotheses finished here, each ending with its stop token.
    """
    expansions = []
    for b, ((tokens, lps), (ids, top_lps, _)) in enumerate(zip(beams, tops)):
        total = sum(lps)
        for t, lp in zip(ids, top_lps):
            expansions.append((-(total + lp), [*tokens, t], b, t, lp))
    expansions.sort(key=lambda e: (e[0], e[1]))
    chosen: list[tuple[int, int, float]] = []
    finished: list[tuple[list[int], list[float]]] = []
    for _, _, b, t, lp in expansions:
        tokens, lps = beams[b]
        if t in stop_ids:
            if tokens:
                finished.append(([*tokens, t], [*lps, lp if t == eos_id else tops[b][2]]))
            continue
        chosen.append((b, t, lp))
        if len(chosen) == width:
            break
    return chosen, finished


@torch.no_grad()
def beam_search(
    model,
    prefix_ids: list[int],
    width: int,
    top_k: int,
    max_new_tokens: int,
    stop_ids: set[int],
    eos_id: int,
) -> list[list[int]]:
    """Beam search after `prefix_ids`: every hypothesis it finishes (ending with a stop token) until it has
    twice `width` of them, and the beams still live at the length cap (without one). Plain, like the above."""
    hypotheses = 2 * width
    device = next(model.parameters()).device
    out = model(input_ids=torch.tensor([prefix_ids], device=device), use_cache=True)
    cache = output_cache(out)
    logprobs = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
    beams: list[tuple[list[int], list[float]]] = [([], [])]
    done: list[list[int]] = []
    position = len(prefix_ids)
    for step in range(max_new_tokens):
        top, ids = logprobs.topk(top_k, dim=-1)
        tops = [(ids[b].tolist(), top[b].tolist(), float(logprobs[b, eos_id])) for b in range(len(beams))]
        chosen, finished = beam_step(beams, tops, width, stop_ids, eos_id)
        done += [tokens for tokens, _ in finished]
        if len(done) >= hypotheses or not chosen:
            return done
        beams = [([*beams[b][0], t], [*beams[b][1], lp]) for b, t, lp in chosen]
        if step == max_new_tokens - 1:
            return done + [tokens for tokens, _ in beams]
        cache.batch_select_indices(torch.tensor([b for b, _, _ in chosen], device=device))
        out = model(
            input_ids=torch.tensor([[t] for _, t, _ in chosen], device=device),
            **cache_kwargs(cache),
            position_ids=torch.full((len(chosen), 1), position, device=device),
            use_cache=True,
        )
        cache = output_cache(out)
        logprobs = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
        position += 1
    return done
