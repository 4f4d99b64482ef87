"""Attention for the fast sweep's forest: each document's candidate tokens attend to that document's keys only.

In batch mode the cache holds several responses end to end. One dense masked attention over all of it would
spend most of its work on keys the mask then throws away (every other document's); here each document's
queries meet only its own keys, in one small attention call per document and layer.

The sweep hands each layer a `DocBlocks` in place of a mask tensor, and switches the model to this attention
function only for its decoding forwards (`using_tree_attention`). Anything else is passed on to PyTorch SDPA.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

NAME = "revprompt_tree"


@dataclass
class DocBlocks:
    """Per document: its query rows, its key slots (in the updated cache), and which of those each row sees."""

    rows: list[torch.Tensor]
    keys: list[torch.Tensor]
    visible: list[torch.Tensor]  # bool (rows_d, keys_d): True where the query may attend


def tree_attention_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    if not isinstance(attention_mask, DocBlocks):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    # query (B, heads, Q, D); key/value (B, kv_heads, K, D); the output is (B, Q, heads, D) like SDPA's wrapper.
    out = query.new_empty((query.shape[0], query.shape[2], query.shape[1], value.shape[-1]))
    gqa = query.shape[1] != key.shape[1]
    for rows, keys, visible in zip(attention_mask.rows, attention_mask.keys, attention_mask.visible):
        attended = torch.nn.functional.scaled_dot_product_attention(
            query.index_select(2, rows),
            key.index_select(2, keys),
            value.index_select(2, keys),
            attn_mask=visible,
            scale=scaling,
            enable_gqa=gqa,
        )
        out[:, rows] = attended.transpose(1, 2)
    return out, None


AttentionInterface.register(NAME, tree_attention_forward)


@contextmanager
def using_tree_attention(model):
    config = model.config
    before = config._attn_implementation
    config._attn_implementation = NAME
    try:
        yield
    finally:
        config._attn_implementation = before
