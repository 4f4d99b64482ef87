"""The fast sweep: every configuration of the contrastive-search sweep decoded together, sharing all work.

What the plain decoder (core/decoding.py) does 24 times over, this does once:

* The response is encoded once. Its KV cache is the root of a token tree that every configuration grows.
* Configurations whose outputs agree so far share one tree node (same prefix = same state). Per step, each
  live node needs the hidden state of each of its top-k candidate tokens; configurations that differ only
  in penalty_alpha, or in top_k (a smaller k's candidates are a prefix of a larger k's), need the same
  candidate forwards, so each distinct (node, candidate token) is evaluated exactly once.
* A candidate that loses to the node's most probable token whatever its degeneration penalty turns out to
  be (a bound from the probabilities alone, `_needed`) is not run at all: on the confident steps of a
  trained model that is most candidates of the small-penalty configurations.
* All candidate tokens of all nodes go through the model in ONE forward per step, as a single sequence
  appended to the shared cache. A visibility mask lets each candidate see only its response, the path of
  its own node and itself ("tree attention", core/tree_attention.py: one small attention per document, so
  documents batched together don't pay for each other's keys), and position ids give each its true depth.
  Sliding-window layers get the same mask restricted to their window, so the result equals separate
  decoding.
* Only the transformer body runs per candidate; the 262K-word LM head runs only on the candidates that some
  configuration selects (the next step's distribution), which is most of the saving on a small model.
* Cache entries of candidates nobody selected are dropped after each step, so attention stays the size of
  the response plus the live tree.
* The probability of each chosen token (and of EOS after the last one) is read off the distributions the
  decoder computes anyway, so ranking needs no extra scoring pass: the scores equal the teacher-forced ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from . import decoding
from .hf_compat import cache_kwargs, new_cache
from .scoring import PromptScore, _finish
from .tree_attention import DocBlocks, using_tree_attention
from .types import DecodeConfig


@dataclass
class _Node:
    """One distinct generated prefix and the configurations currently sharing it."""

    configs: list[DecodeConfig]
    tokens: list[int]
    slots: list[int]  # cache positions of this prefix's generated tokens
    hidden: torch.Tensor  # (n_generated, H) final-norm hidden states of the generated tokens
    # The next-token distribution, as much of it as the sweep reads: the top max-k tokens with their log
    # p(token | response + tokens), and log p(EOS | ...). Keeping a (V,) row per node cost a 262K-wide
    # log-softmax pass per node and step, and a megabyte per live node.
    top_ids: torch.Tensor  # (max k,)
    top_logprobs: torch.Tensor  # (max k,)
    eos_logprob: float
    token_logprobs: list[float] = field(default_factory=list)  # log p of each generated token when chosen
    doc: int = 0  # which response of a batch this node grows from


@dataclass
class SweepOutput:
    sequences: dict[tuple[int, ...], list[DecodeConfig]]
    scores: dict[tuple[int, ...], PromptScore]  # keyed by body + [eos], as Engine._rank expects


# Margin for float rounding in the bound below: a candidate is skipped only when it loses by more than this.
_PRUNE_MARGIN = 1e-4


def _needed(probs: torch.Tensor, configs: list[DecodeConfig]) -> torch.Tensor:
    """Rank positions (ascending) of the candidates some configuration could still pick.

    Candidate j's score is (1 - a) p_j - a d_j with the degeneration d_j (a max cosine) in [-1, 1], so it
    loses to the most probable candidate whatever the hidden states are once (1 - a)(p_0 - p_j) > 2a. Such
    candidates need no forward: skipping them cannot change any choice, and at small penalty_alpha on a
    confident step that is most of them.
    """
    k = probs.shape[0]
    ranks = torch.arange(k, device=probs.device)
    gap = probs[0] - probs
    needed = ranks == 0
    for config in configs:
        a = config.penalty_alpha
        needed |= (ranks < config.top_k) & ((1.0 - a) * gap <= 2.0 * a + _PRUNE_MARGIN)
    return needed.nonzero().squeeze(1)


def _lm_logits(causal_lm, hidden: torch.Tensor) -> torch.Tensor:
    logits = causal_lm.lm_head(hidden)
    softcap = getattr(causal_lm.config, "final_logit_softcapping", None)
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return logits.float()


def _lm_logprobs(causal_lm, hidden: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(_lm_logits(causal_lm, hidden), dim=-1)


def _lm_top(causal_lm, hidden: torch.Tensor, k: int, eos_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each row of `hidden` (R, H): the top-k token ids, their log-probabilities, and log p(EOS).

    One top-k and one log-sum-exp over the (R, V) logits for all rows together, where a full log-softmax per
    row would write and read another (R, V) tensor: on a 262K-word vocabulary that pass is a large part of a
    decoding step's time once the body's rows are few.
    """
    logits = _lm_logits(causal_lm, hidden)
    lse = torch.logsumexp(logits, dim=-1, keepdim=True)
    top, ids = logits.topk(k, dim=-1)
    return ids, top - lse, logits[..., eos_id] - lse[..., 0]


def _doc_blocks(config, visible, slot_owner, key_positions, query_positions, row_doc, n_docs):
    """Per-document attention blocks for full and sliding-window layers from the (Q, K) visibility matrix."""
    window = getattr(config, "sliding_window", None)
    full, sliding = DocBlocks([], [], []), DocBlocks([], [], [])
    for d in range(n_docs):
        rows = (row_doc == d).nonzero().squeeze(1)
        if rows.numel() == 0:
            continue
        keys = (slot_owner == d).nonzero().squeeze(1)
        seen = visible.index_select(0, rows).index_select(1, keys)
        for blocks in (full, sliding):
            blocks.rows.append(rows)
            blocks.keys.append(keys)
        full.visible.append(seen)
        if window:
            in_window = key_positions[keys][None, :] > (query_positions[rows][:, None] - window)
            seen = seen & in_window
        sliding.visible.append(seen)
    return {"full_attention": full, "sliding_attention": sliding}


@torch.no_grad()
def fast_sweep(model, prefix_ids, configs, max_new_tokens, stop_ids, eos_id) -> SweepOutput:
    """The sweep for one response."""
    return fast_sweep_many(model, [prefix_ids], configs, max_new_tokens, stop_ids, eos_id)[0]


def _beam_groups(live: list[_Node]) -> dict[tuple[int, DecodeConfig], list[tuple[int, _Node]]]:
    """The live nodes of each document's beam search, by (document, beam config), with their index in `live`."""
    groups: dict[tuple[int, DecodeConfig], list[tuple[int, _Node]]] = {}
    for i, node in enumerate(live):
        for config in node.configs:
            if config.beams:
                groups.setdefault((node.doc, config), []).append((i, node))
    return groups


def _kv_layers(cache) -> list[Any]:
    """A cache's layers (`new_cache`: the own Gemma 3's, or a transformers DynamicCache built without a model
    config): every one a plain key/value layer. transformers types them as a union of layer kinds, some without
    `keys`/`values`."""
    return list(cache.layers)


@torch.no_grad()
def fast_sweep_many(
    model,
    prefixes: list[list[int]],
    configs: list[DecodeConfig],
    max_new_tokens: int,
    stop_ids: set[int],
    eos_id: int,
) -> list[SweepOutput]:
    """The sweep for several responses at once: their trees share every forward (a forest), so each step
    reads the weights once for all documents. On a CPU, where a step costs mostly weight traffic, this is
    what makes batch analysis fast. Each document's candidates see only its own response and path.
    """
    body = model.model  # transformer body (final norm included), no LM head
    device = next(model.parameters()).device
    n_docs = len(prefixes)
    # Each response is encoded on its own, then the caches are laid end to end. A plain cache (no
    # sliding-window eviction) is used: the masks, not the cache, implement the window.
    k_max = max(c.top_k for c in configs)
    caches, contexts, roots = [], [], []
    for prefix_ids in prefixes:
        cache = new_cache(model)
        out = body(input_ids=torch.tensor([prefix_ids], device=device), **cache_kwargs(cache), use_cache=True)
        caches.append(cache)
        contexts.append(torch.nn.functional.normalize(out.last_hidden_state[0].float(), dim=-1))
        roots.append(_lm_top(model, out.last_hidden_state[0, -1:], k_max, eos_id))
    cache = caches[0]
    for other in caches[1:]:
        for layer, extra in zip(_kv_layers(cache), _kv_layers(other)):
            layer.keys = torch.cat([layer.keys, extra.keys], dim=2)
            layer.values = torch.cat([layer.values, extra.values], dim=2)
    # Per cache slot: its position id, which document's response it belongs to (-1: a generated token), and
    # which document it belongs to at all.
    key_positions = torch.cat([torch.arange(len(p), device=device) for p in prefixes])
    slot_doc = torch.cat([torch.full((len(p),), d, device=device) for d, p in enumerate(prefixes)])
    slot_owner = slot_doc.clone()
    hidden_size = contexts[0].shape[-1]
    live = [
        _Node(
            list(configs),
            [],
            [],
            contexts[d].new_zeros((0, hidden_size)),
            roots[d][0][0],
            roots[d][1][0],
            float(roots[d][2][0]),
            doc=d,
        )
        for d in range(n_docs)
    ]
    finished: list[dict] = [{} for _ in range(n_docs)]
    scores: list[dict] = [{} for _ in range(n_docs)]
    beam_done: dict[tuple[int, DecodeConfig], int] = {}  # hypotheses each document's beam search has finished

    for step in range(max_new_tokens):
        if not live:
            break
        # 0. Beam searches: each (document, beam config) steps its beams, the live nodes carrying it, as the
        #    reference does (decoding.beam_step). Hypotheses it finishes leave; its picks become rows below.
        beam_picks: dict[int, dict[int, list[DecodeConfig]]] = {}  # node index -> rank position -> configs
        for (doc, config), nodes in _beam_groups(live).items():
            tops = [
                (n.top_ids[: config.top_k].tolist(), n.top_logprobs[: config.top_k].tolist(), n.eos_logprob)
                for _, n in nodes
            ]
            picks, done = decoding.beam_step(
                [(n.tokens, n.token_logprobs) for _, n in nodes], tops, config.beams, stop_ids, eos_id
            )
            for tokens, lps in done:
                finished[doc].setdefault(tuple(tokens), []).append(config)
                scores[doc][tuple(tokens[:-1]) + (eos_id,)] = _finish(tokens[:-1] + [eos_id], lps)
            beam_done[doc, config] = beam_done.get((doc, config), 0) + len(done)
            if beam_done[doc, config] >= 2 * config.beams or not picks:
                for _, n in nodes:
                    n.configs = [c for c in n.configs if c != config]
                continue
            for b, token, _ in picks:
                n_idx, node = nodes[b]
                rank = int((node.top_ids[: config.top_k] == token).nonzero()[0, 0])
                beam_picks.setdefault(n_idx, {}).setdefault(rank, []).append(config)
        kept = [i for i, node in enumerate(live) if node.configs]
        beam_picks = {new: beam_picks[old] for new, old in enumerate(kept) if old in beam_picks}
        live = [live[i] for i in kept]
        if not live:
            break

        # 1. Candidate tokens per node: the top max-k of the node's distribution serves every config in it.
        #    Only candidates that could still win for some contrastive config are run through the model
        #    (_needed), and the tokens the node's beams go on with.
        cand_ids, cand_probs, cand_pos, cand_lps = [], [], [], []
        for n_idx, node in enumerate(live):
            k = max(c.top_k for c in node.configs)
            lp, ids = node.top_logprobs[:k], node.top_ids[:k]
            probs = lp.exp()
            contrastive = [c for c in node.configs if not c.beams]
            pos = _needed(probs, contrastive) if contrastive else torch.zeros(0, dtype=torch.long, device=device)
            if n_idx in beam_picks:
                picked = torch.tensor(sorted(beam_picks[n_idx]), dtype=torch.long, device=device)
                pos = torch.unique(torch.cat([pos, picked]))  # sorted: a config's top_k are the first ones
            cand_pos.append(pos)
            cand_ids.append(ids[pos])
            cand_lps.append(lp[pos])
            cand_probs.append(probs)
        flat_ids = torch.cat(cand_ids)
        flat_lps = torch.cat(cand_lps).tolist()
        n_rows = flat_ids.shape[0]
        n_keys = key_positions.shape[0]
        # 2. One forward for all candidates: each sees its document's response, its node's path, and itself.
        visible = torch.zeros((n_rows, n_keys + n_rows), dtype=torch.bool, device=device)
        query_positions = torch.empty((n_rows,), dtype=torch.long, device=device)
        row_doc = torch.empty((n_rows,), dtype=torch.long, device=device)
        row = 0
        for node, ids in zip(live, cand_ids):
            k = ids.shape[0]
            visible[row : row + k, :n_keys] = slot_doc == node.doc
            if node.slots:
                visible[row : row + k, torch.tensor(node.slots, device=device)] = True
            query_positions[row : row + k] = len(prefixes[node.doc]) + step
            row_doc[row : row + k] = node.doc
            row += k
        visible[:, n_keys:] = torch.eye(n_rows, dtype=torch.bool, device=device)
        blocks = _doc_blocks(
            model.config,
            visible,
            torch.cat([slot_owner, row_doc]),
            torch.cat([key_positions, query_positions]),
            query_positions,
            row_doc,
            n_docs,
        )
        with using_tree_attention(model):
            hidden = body(
                input_ids=flat_ids[None],
                position_ids=query_positions[None],
                attention_mask=blocks,
                **cache_kwargs(cache),
                use_cache=True,
            ).last_hidden_state[0]  # (R, H)
        hidden_unit = torch.nn.functional.normalize(hidden.float(), dim=-1)

        # 3. Each config picks its token; configs that pick the same token from the same node stay together.
        children: dict[tuple[int, int], list[DecodeConfig]] = {}
        row = 0
        for n_idx, (node, ids, probs, pos) in enumerate(zip(live, cand_ids, cand_probs, cand_pos)):
            k = ids.shape[0]
            ctx = contexts[node.doc]
            if node.slots:
                ctx = torch.cat([ctx, torch.nn.functional.normalize(node.hidden.float(), dim=-1)])
            degeneration = (hidden_unit[row : row + k] @ ctx.T).max(dim=-1).values
            needed_probs = probs[pos]
            for rank, beam_configs in beam_picks.get(n_idx, {}).items():
                children.setdefault((n_idx, row + int((pos == rank).nonzero()[0, 0])), []).extend(beam_configs)
            for config in node.configs:
                if config.beams:
                    continue
                # Candidates are in rank order, so a config's top_k are the first ones whose rank < top_k.
                kk = int((pos < config.top_k).sum())
                score = (1.0 - config.penalty_alpha) * needed_probs[:kk] - config.penalty_alpha * degeneration[:kk]
                choice = int(score.argmax())
                children.setdefault((n_idx, row + choice), []).append(config)
            row += k

        # 4. Grow the trees: finished sequences leave, the rest become next step's nodes.
        next_live: list[_Node] = []
        grow_rows: list[int] = []
        for (n_idx, flat_row), chosen in children.items():
            parent = live[n_idx]
            token = int(flat_ids[flat_row])
            token_lp = flat_lps[flat_row]
            tokens = parent.tokens + [token]
            if token in stop_ids:
                finished[parent.doc].setdefault(tuple(tokens), []).extend(chosen)
                # EOS closes the prompt; another stop token is scored as if it were EOS, as the ranker does.
                lps = parent.token_logprobs + [token_lp if token == eos_id else parent.eos_logprob]
                scores[parent.doc][tuple(parent.tokens) + (eos_id,)] = _finish(parent.tokens + [eos_id], lps)
                continue
            next_live.append(
                _Node(
                    chosen,
                    tokens,
                    parent.slots + [n_keys + flat_row],
                    torch.cat([parent.hidden, hidden[flat_row : flat_row + 1]]),
                    parent.top_ids,
                    parent.top_logprobs,
                    parent.eos_logprob,
                    parent.token_logprobs + [token_lp],
                    doc=parent.doc,
                )
            )
            grow_rows.append(flat_row)
        if next_live:
            top_ids, top_lps, eos_lps = _lm_top(model, hidden[torch.tensor(grow_rows, device=device)], k_max, eos_id)
            for node, ids, lps, eos_lp in zip(next_live, top_ids, top_lps, eos_lps.tolist()):
                node.top_ids, node.top_logprobs, node.eos_logprob = ids, lps, eos_lp
        # Sequences that hit the length cap end here, scored with the EOS they would still need.
        if step == max_new_tokens - 1:
            for node in next_live:
                key = tuple(node.tokens)
                finished[node.doc].setdefault(key, []).extend(node.configs)
                scores[node.doc][key + (eos_id,)] = _finish(
                    node.tokens + [eos_id], node.token_logprobs + [node.eos_logprob]
                )
            next_live = []

        # 5. Drop cache entries no live node uses: unchosen candidates, finished branches, finished documents.
        key_positions = torch.cat([key_positions, query_positions])
        slot_doc = torch.cat([slot_doc, torch.full((n_rows,), -1, device=device)])
        slot_owner = torch.cat([slot_owner, row_doc])
        live_docs = torch.tensor(sorted({node.doc for node in next_live}), dtype=torch.long, device=device)
        keep_mask = torch.isin(slot_doc, live_docs)
        path_slots = sorted({s for node in next_live for s in node.slots})
        if path_slots:
            keep_mask[torch.tensor(path_slots, device=device)] = True
        keep_index = keep_mask.nonzero().squeeze(1)
        remap = torch.full((keep_mask.shape[0],), -1, dtype=torch.long, device=device)
        remap[keep_index] = torch.arange(keep_index.shape[0], device=device)
        for layer in _kv_layers(cache):
            layer.keys = layer.keys.index_select(2, keep_index)
            layer.values = layer.values.index_select(2, keep_index)
        key_positions = key_positions.index_select(0, keep_index)
        slot_doc = slot_doc.index_select(0, keep_index)
        slot_owner = slot_owner.index_select(0, keep_index)
        for node in next_live:
            node.slots = remap[torch.tensor(node.slots, dtype=torch.long, device=device)].tolist()
        live = next_live

    return [SweepOutput(f, s) for f, s in zip(finished, scores)]
