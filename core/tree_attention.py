"""Attention for the fast sweep's forest: each document's candidate tokens attend to that document's keys only.

In batch mode the cache holds several responses end to end. One dense masked attention over all of it would
spend most of its work on keys the mask then throws away (every other document's); here each document's
queries meet only its own keys, in one small attention call per document and layer (`doc_block_attention`).

The sweep hands each layer a `DocBlocks` in place of a mask tensor. revprompt's own Gemma 3 (core/gemma3.py)
reads it natively. A transformers model is switched to this attention function only for the sweep's decoding
forwards (`using_tree_attention`); anything else is passed on to transformers' SDPA. The registration with
transformers happens on that first switch, not at import: `transformers.AttentionInterface` lives in
`transformers.modeling_utils`, seconds of imports that the own model never needs.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import dataclass

import torch

NAME = "revprompt_tree"


@dataclass
class DocBlocks:
    """Per document: its query rows, its key slots (in the updated cache), and which of those each row sees."""

    rows: list[torch.Tensor]
    keys: list[torch.Tensor]
    visible: list[torch.Tensor]  # bool (rows_d, keys_d): True where the query may attend


def doc_block_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, blocks: DocBlocks, scaling: float | None
) -> torch.Tensor:
    """query (B, heads, Q, D); key/value (B, kv_heads, K, D); the output is (B, Q, heads, D), like SDPA's wrapper in
    transformers. Each document's rows attend to that document's keys, as its `visible` block allows."""
    gqa = query.shape[1] != key.shape[1]
    if len(blocks.rows) == 1 and blocks.rows[0].numel() == query.shape[2] and blocks.keys[0].numel() == key.shape[2]:
        # One document owning every row and key (any single-text sweep): no gather or scatter copies needed.
        attended = torch.nn.functional.scaled_dot_product_attention(
            query, key, value, attn_mask=blocks.visible[0], scale=scaling, enable_gqa=gqa
        )
        return attended.transpose(1, 2)
    out = query.new_empty((query.shape[0], query.shape[2], query.shape[1], value.shape[-1]))
    for rows, keys, visible in zip(blocks.rows, blocks.keys, blocks.visible):
        attended = torch.nn.functional.scaled_dot_product_attention(
            query.index_select(2, rows),
            key.index_select(2, keys),
            value.index_select(2, keys),
            attn_mask=visible,
            scale=scaling,
            enable_gqa=gqa,
        )
        out[:, rows] = attended.transpose(1, 2)
    return out


def tree_attention_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """The attention function registered with transformers under NAME."""
    if not isinstance(attention_mask, DocBlocks):
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    return doc_block_attention(query, key, value, attention_mask, scaling), None


@functools.cache
def _register_with_transformers() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, tree_attention_forward)


@contextmanager
def using_tree_attention(model):
    """Within this block, `model`'s forwards accept a dict of `DocBlocks` (one per layer type) as attention mask.
    A no-op for the own Gemma 3, which always does."""
    if getattr(model, "reads_doc_blocks", False):
        yield
        return
    _register_with_transformers()
    config = model.config
    before = config._attn_implementation
    config._attn_implementation = NAME
    try:
        yield
    finally:
        config._attn_implementation = before
