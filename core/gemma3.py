"""revprompt's own Gemma 3 text decoder, for inference: the analysis path without transformers' model classes.

Why it exists: transformers' Gemma 3 classes import `transformers.modeling_utils`, which pulls in
torch.distributed.tensor, torch._dynamo (through the fp8 integrations) and scipy: about 2 s of a one-sentence
`revprompt analyze`, more than the analysis itself (issue #14, bench/RESULTS.md). This is the forward of
transformers' `Gemma3ForCausalLM` (5.24, models/gemma3/modeling_gemma3.py) in plain torch, operation for
operation, so its logits equal transformers' up to float rounding (tests/test_gemma3.py). transformers stays the
library for training, PEFT merges and every other model: core/fast_load.py builds this class only for a
`gemma3_text` checkpoint whose config it fully understands (`unsupported`), and falls back otherwise.

The interface is the part of transformers' one that revprompt's decoders use (core/sweep.py, decoding.py,
scoring.py, keyword_scoring.py), so they run either model unchanged:

* `Gemma3ForCausalLM(input_ids, attention_mask=None, position_ids=None, cache=None, use_cache=True,
  output_hidden_states=False)` returns an `Output` with `.logits`, `.cache` (also named `.past_key_values`, the
  older transformers name) and `.hidden_states` (the embeddings, then each layer's output, the last one after the
  final norm, as transformers gives them). `.model` is the body: the same arguments, `.last_hidden_state` instead
  of logits. `.lm_head` and `.config` (`sliding_window`, `final_logit_softcapping`, ...) are there too.
* `KVCache`: `.layers[i].keys` / `.values` (batch, kv heads, slots, head dim), which callers may concatenate,
  slice and index; `batch_repeat_interleave`, `batch_select_indices`, `get_seq_length`; deep-copyable. It keeps
  every slot: sliding-window layers get their window from the mask, never by eviction (as the sweep wants).
* `attention_mask`: None (causal over cache slots, and the window on sliding layers, as transformers does), a
  (batch, slots) 0/1 padding mask, or a dict {layer type: DocBlocks}, the sweep's tree attention
  (core/tree_attention.py), which this model reads natively (`reads_doc_blocks`).

Parameter names equal the checkpoint's (`model.layers.0.self_attn.q_proj.weight`, ...), so core/fast_load.py
assigns the memory-mapped safetensors as they are (`from_state_dict`), and the projections are nn.Linear, so
core/cpu_linear.py packs them like transformers' ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .tree_attention import DocBlocks, doc_block_attention

MODEL_TYPE = "gemma3_text"
ARCHITECTURE = "Gemma3ForCausalLM"
FULL, SLIDING = "full_attention", "sliding_attention"
# transformers' Gemma3TextConfig defaults, for keys a config.json leaves out.
_DEFAULT_THETA = {FULL: 1_000_000.0, SLIDING: 10_000.0}


# -- config ---------------------------------------------------------------------------------------------------
def _rope(raw: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """{layer type: (theta, linear scaling factor)}, from `rope_parameters` per layer type (transformers >= 5)
    or the older `rope_theta` / `rope_local_base_freq` / `rope_scaling` keys, merged the way transformers'
    Gemma3TextConfig does. Raises ValueError on a RoPE type this model does not implement."""
    params = raw.get("rope_parameters") or {}
    if "rope_type" in params or "rope_theta" in params:
        raise ValueError("rope_parameters not given per layer type")
    per_type = {kind: dict(params.get(kind) or {}) for kind in (FULL, SLIDING)}
    if raw.get("rope_scaling"):
        per_type[FULL].update(raw["rope_scaling"])
    per_type[FULL].setdefault("rope_theta", raw.get("rope_theta", _DEFAULT_THETA[FULL]))
    per_type[SLIDING].setdefault("rope_theta", raw.get("rope_local_base_freq", _DEFAULT_THETA[SLIDING]))
    rope = {}
    for kind, p in per_type.items():
        rope_type = p.get("rope_type", p.get("type", "default"))
        if rope_type == "default":
            factor = 1.0
        elif rope_type == "linear":
            factor = float(p["factor"])
        else:
            raise ValueError(f"RoPE type {rope_type!r} is not implemented")
        if p.get("partial_rotary_factor", 1.0) != 1.0:
            raise ValueError("partial rotary embeddings are not implemented")
        rope[kind] = (float(p["rope_theta"]), factor)
    return rope


@dataclass
class Gemma3Config:
    """What the forward needs from a Gemma 3 text config.json (defaults: transformers' Gemma3TextConfig)."""

    vocab_size: int = 262_208
    hidden_size: int = 2304
    intermediate_size: int = 9216
    num_hidden_layers: int = 26
    num_attention_heads: int = 8
    num_key_value_heads: int = 4
    head_dim: int = 256
    rms_norm_eps: float = 1e-6
    query_pre_attn_scalar: float = 256
    sliding_window: int | None = 4096
    layer_types: list[str] = field(default_factory=list)
    rope: dict[str, tuple[float, float]] = field(default_factory=dict)  # layer type: (theta, linear factor)
    attention_bias: bool = False
    final_logit_softcapping: float | None = None
    tie_word_embeddings: bool = True
    max_position_embeddings: int = 131_072
    bos_token_id: int | None = 2
    eos_token_id: int | list[int] | None = 1
    pad_token_id: int | None = 0
    model_type: str = MODEL_TYPE

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Gemma3Config:
        """The config of a config.json's contents; ValueError where `unsupported` says why."""
        reason = unsupported(raw)
        if reason:
            raise ValueError(f"not a Gemma 3 text config this model implements: {reason}")
        return cls._parse(raw)

    @classmethod
    def _parse(cls, raw: dict[str, Any]) -> Gemma3Config:
        kwargs = {
            name: raw[name]
            for name in (
                "vocab_size",
                "hidden_size",
                "intermediate_size",
                "num_hidden_layers",
                "num_attention_heads",
                "num_key_value_heads",
                "head_dim",
                "rms_norm_eps",
                "query_pre_attn_scalar",
                "sliding_window",
                "attention_bias",
                "final_logit_softcapping",
                "tie_word_embeddings",
                "max_position_embeddings",
                "bos_token_id",
                "eos_token_id",
                "pad_token_id",
            )
            if name in raw
        }
        config = cls(**kwargs, rope=_rope(raw))
        if raw.get("layer_types"):
            config.layer_types = list(raw["layer_types"])
        else:
            # Configs from before `layer_types`: every `sliding_window_pattern`-th layer is global.
            pattern = int(raw.get("sliding_window_pattern") or raw.get("_sliding_window_pattern") or 6)
            config.layer_types = [SLIDING if (i + 1) % pattern else FULL for i in range(config.num_hidden_layers)]
        return config


def unsupported(raw: dict[str, Any]) -> str | None:
    """Why a config.json (its parsed contents) is not one this model reproduces exactly, or None if it is.
    Anything this returns a reason for is loaded with transformers instead."""
    if raw.get("model_type") != MODEL_TYPE:
        return f"model_type {raw.get('model_type')!r}, not {MODEL_TYPE!r}"
    architectures = raw.get("architectures") or [ARCHITECTURE]
    if architectures != [ARCHITECTURE]:
        return f"architectures {architectures}"
    activation = raw.get("hidden_activation") or raw.get("hidden_act") or "gelu_pytorch_tanh"
    if activation != "gelu_pytorch_tanh":
        return f"activation {activation!r}"
    if raw.get("use_bidirectional_attention"):
        return "bidirectional attention"
    if raw.get("attn_logit_softcapping") is not None:
        return "attention logit soft-capping"
    if raw.get("quantization_config"):
        return "a quantized checkpoint"
    try:
        config = Gemma3Config._parse(raw)
    except (ValueError, TypeError, KeyError) as exc:
        return str(exc)
    if len(config.layer_types) != config.num_hidden_layers or set(config.layer_types) - {FULL, SLIDING}:
        return f"layer_types {config.layer_types}"
    if not config.head_dim:
        return "no head_dim"
    if config.num_attention_heads % config.num_key_value_heads:
        return "attention heads not a multiple of the key/value heads"
    return None


# -- the KV cache ---------------------------------------------------------------------------------------------
class KVLayer:
    """One layer's cached keys and values, (batch, kv heads, slots, head dim) each."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor):
        self.keys = keys
        self.values = values


class KVCache:
    """Every layer's keys and values so far, in slot order; the same methods as transformers' DynamicCache that
    revprompt's decoders call."""

    def __init__(self) -> None:
        self.layers: list[KVLayer] = []

    def update(self, keys: torch.Tensor, values: torch.Tensor, layer_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Append a forward's keys and values to layer `layer_idx`; returns all of that layer's."""
        if layer_idx == len(self.layers):
            self.layers.append(KVLayer(keys, values))
        else:
            layer = self.layers[layer_idx]
            layer.keys = torch.cat([layer.keys, keys], dim=-2)
            layer.values = torch.cat([layer.values, values], dim=-2)
        layer = self.layers[layer_idx]
        return layer.keys, layer.values

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.layers[layer_idx].keys.shape[-2] if layer_idx < len(self.layers) else 0

    def batch_repeat_interleave(self, repeats: int) -> None:
        for layer in self.layers:
            layer.keys = layer.keys.repeat_interleave(repeats, dim=0)
            layer.values = layer.values.repeat_interleave(repeats, dim=0)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        for layer in self.layers:
            layer.keys = layer.keys[indices, ...]
            layer.values = layer.values[indices, ...]


@dataclass
class Output:
    """A forward's result: the body fills `last_hidden_state`, the causal LM `logits` too."""

    last_hidden_state: torch.Tensor
    logits: torch.Tensor | None = None
    cache: KVCache | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None

    @property
    def past_key_values(self) -> KVCache | None:
        """The cache under the name transformers releases up to 5.1x use (core/hf_compat.py)."""
        return self.cache


# -- masks ----------------------------------------------------------------------------------------------------
@dataclass
class _Mask:
    """A causal mask for SDPA: `visible` (bool, broadcastable to (batch, heads, queries, slots)), or None with
    `causal` saying whether SDPA's own causal mask applies (a prefill with nothing cached)."""

    visible: torch.Tensor | None
    causal: bool


def _causal_mask(past: int, n: int, window: int | None, padding: torch.Tensor | None, device) -> _Mask:
    """The mask transformers builds for `n` new tokens after `past` cached slots: a query sees the slots up to its
    own and, with a `window`, only those less than `window` slots back; a padding mask removes slots too.

    Where every query sees every slot up to its own (no padding, all within the window), no mask is built:
    transformers then runs SDPA unmasked as well, so the two compute the same way."""
    slots = past + n
    if padding is None and (window is None or slots <= window):
        if n == 1:
            return _Mask(None, False)
        if past == 0:
            return _Mask(None, True)
    query_slot = torch.arange(past, slots, device=device)[:, None]
    key_slot = torch.arange(slots, device=device)[None, :]
    visible = key_slot <= query_slot
    if window is not None:
        visible = visible & (key_slot > query_slot - window)
    if padding is not None:
        if padding.shape[-1] != slots:
            raise ValueError(f"attention_mask covers {padding.shape[-1]} slots, the cache and input {slots}")
        visible = visible[None, None] & padding.bool()[:, None, None, :]
    return _Mask(visible, False)


# -- the model ------------------------------------------------------------------------------------------------
class Linear(nn.Linear):
    """An nn.Linear (core/cpu_linear.py packs it) without random initialisation: the weights always come from a
    checkpoint (`Gemma3ForCausalLM.from_state_dict`). Initialising on the meta device would not be free either:
    torch's init functions run there through torch._refs, which imports torch._dynamo (~0.9 s)."""

    def reset_parameters(self) -> None:
        pass


class Embedding(nn.Embedding):
    """An nn.Embedding without random initialisation, for the same reason as `Linear`."""

    def reset_parameters(self) -> None:
        pass


class RMSNorm(nn.Module):
    """Gemma's RMSNorm: computed in float32, scaled by (1 + weight), cast back.

    PyTorch's fused `rms_norm` gives the same bits as the written-out x * rsqrt(mean(x²) + eps) * (1 + weight) in
    one kernel where that took seven; a decoding step runs 109 of these on a few dozen rows, where per-op overhead
    is the cost. The (1 + weight) factor is kept between calls, remade when the weight changes."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(dim))
        self._scale: torch.Tensor | None = None
        self._scale_key: tuple[int, int, torch.device] | None = None

    def scale(self) -> torch.Tensor:
        weight = self.weight
        if torch.is_grad_enabled() and weight.requires_grad:
            return 1.0 + weight.float()
        key = (weight.data_ptr(), weight._version, weight.device)
        if self._scale is None or self._scale_key != key:
            self._scale, self._scale_key = 1.0 + weight.detach().float(), key
        return self._scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.rms_norm(x.float(), (x.shape[-1],), self.scale(), self.eps).type_as(x)


class Rotary(nn.Module):
    """RoPE for one layer type: (cos, sin) per position, computed in float32 and cast to the activations' dtype."""

    def __init__(self, head_dim: int, theta: float, factor: float):
        super().__init__()
        # Built on the CPU even under a meta-device context (core/fast_load.py builds the model there): this is
        # no checkpoint tensor, so nothing would replace it.
        arange = torch.arange(0, head_dim, 2, dtype=torch.float, device="cpu")
        inv_freq = 1.0 / (theta ** (arange / head_dim))
        self.inv_freq: torch.Tensor
        self.register_buffer("inv_freq", inv_freq / factor if factor != 1.0 else inv_freq, persistent=False)

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, signed sin), each (batch, 1, tokens, head dim), for `_rotate`: the sin's first half negated, so a
        rotation is a roll and three element-wise ops, and the heads axis is already there to broadcast over."""
        freqs = position_ids[..., None].float() * self.inv_freq.to(device=x.device, dtype=torch.float)
        emb = torch.cat((freqs, freqs), dim=-1)
        sin = emb.sin()
        half = sin.shape[-1] // 2
        sin[..., :half].neg_()
        return emb.cos().to(x.dtype).unsqueeze(1), sin.to(x.dtype).unsqueeze(1)


def _rotate(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """x (batch, heads, tokens, head dim) rotated by RoPE: x·cos + rotate_half(x)·sin, where rotate_half(x) is
    (−x₂, x₁). Written as roll(x)·signed_sin, (x₂, x₁)·(−sin₁, sin₂): the same products, so the same bits."""
    return x * cos + torch.roll(x, x.shape[-1] // 2, dims=-1) * signed_sin


class Attention(nn.Module):
    def __init__(self, config: Gemma3Config, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.head_dim = config.head_dim
        self.gqa = config.num_attention_heads != config.num_key_value_heads
        self.scaling = config.query_pre_attn_scalar**-0.5
        hidden, heads, kv_heads = config.hidden_size, config.num_attention_heads, config.num_key_value_heads
        bias = config.attention_bias
        self.q_proj = Linear(hidden, heads * self.head_dim, bias=bias)
        self.k_proj = Linear(hidden, kv_heads * self.head_dim, bias=bias)
        self.v_proj = Linear(hidden, kv_heads * self.head_dim, bias=bias)
        self.o_proj = Linear(heads * self.head_dim, hidden, bias=bias)
        self.q_norm = RMSNorm(self.head_dim, config.rms_norm_eps)
        self.k_norm = RMSNorm(self.head_dim, config.rms_norm_eps)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        mask: _Mask | DocBlocks,
        cache: KVCache | None,
    ) -> torch.Tensor:
        batch, n, _ = x.shape
        shape = (batch, n, -1, self.head_dim)
        query = self.q_norm(self.q_proj(x).view(shape).transpose(1, 2))
        key = self.k_norm(self.k_proj(x).view(shape).transpose(1, 2))
        value = self.v_proj(x).view(shape).transpose(1, 2)
        query, key = _rotate(query, *rope), _rotate(key, *rope)
        if cache is not None:
            key, value = cache.update(key, value, self.layer_idx)
        if isinstance(mask, DocBlocks):
            out = doc_block_attention(query, key, value, mask, self.scaling)
        else:
            out = torch.nn.functional.scaled_dot_product_attention(
                query,
                key,
                value,
                attn_mask=mask.visible,
                is_causal=mask.causal,
                scale=self.scaling,
                enable_gqa=self.gqa,
            ).transpose(1, 2)
        return self.o_proj(out.reshape(batch, n, -1))


class MLP(nn.Module):
    def __init__(self, config: Gemma3Config):
        super().__init__()
        self.gate_proj = Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.nn.functional.gelu(self.gate_proj(x), approximate="tanh")
        return self.down_proj(gate * self.up_proj(x))


class DecoderLayer(nn.Module):
    """Gemma 3's block: a norm before and after both the attention and the MLP."""

    def __init__(self, config: Gemma3Config, layer_idx: int):
        super().__init__()
        self.self_attn = Attention(config, layer_idx)
        self.mlp = MLP(config)
        eps = config.rms_norm_eps
        self.input_layernorm = RMSNorm(config.hidden_size, eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, eps)
        self.pre_feedforward_layernorm = RMSNorm(config.hidden_size, eps)
        self.post_feedforward_layernorm = RMSNorm(config.hidden_size, eps)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        mask: _Mask | DocBlocks,
        cache: KVCache | None,
    ) -> torch.Tensor:
        x = x + self.post_attention_layernorm(self.self_attn(self.input_layernorm(x), rope, mask, cache))
        return x + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(x)))


class Gemma3TextModel(nn.Module):
    """The body: scaled embeddings, the decoder layers, the final norm. No LM head."""

    def __init__(self, config: Gemma3Config):
        super().__init__()
        self.config = config
        self.embed_tokens = Embedding(config.vocab_size, config.hidden_size)
        # sqrt(hidden) as transformers keeps it: a float32 tensor cast to the weights' dtype at use, so in bf16 the
        # scale is rounded (sqrt(3072) = 55.43 becomes 55.5) exactly as there.
        self.embed_scale: torch.Tensor
        self.register_buffer(
            "embed_scale", torch.tensor(config.hidden_size**0.5, dtype=torch.float32, device="cpu"), persistent=False
        )
        self.layers = nn.ModuleList(DecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.rotary_emb = nn.ModuleDict(
            {kind: Rotary(config.head_dim, *config.rope[kind]) for kind in sorted(set(config.layer_types))}
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | dict[str, DocBlocks] | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
        past_key_values: KVCache | None = None,
        use_cache: bool = True,
        output_hidden_states: bool = False,
    ) -> Output:
        """`cache` and `past_key_values` are one argument under its two transformers names: either may be given."""
        config = self.config
        cache = cache if cache is not None else past_key_values
        if use_cache and cache is None:
            cache = KVCache()
        x = self.embed_tokens(input_ids) * self.embed_scale.to(self.embed_tokens.weight.dtype)
        past = cache.get_seq_length() if cache is not None else 0
        n = input_ids.shape[1]
        if position_ids is None:
            position_ids = torch.arange(past, past + n, device=x.device)[None]
        masks: dict[str, Any]
        if isinstance(attention_mask, dict):
            masks = attention_mask
        else:
            masks = {
                kind: _causal_mask(
                    past, n, config.sliding_window if kind == SLIDING else None, attention_mask, x.device
                )
                for kind in self.rotary_emb
            }
        ropes = {kind: rotary(x, position_ids) for kind, rotary in self.rotary_emb.items()}
        hidden: list[torch.Tensor] = [x]
        for layer, kind in zip(self.layers, config.layer_types):
            x = layer(x, ropes[kind], masks[kind], cache)
            if output_hidden_states:
                hidden.append(x)
        x = self.norm(x)
        hidden[-1] = x  # as transformers: the last hidden state is the final norm's output
        return Output(last_hidden_state=x, cache=cache, hidden_states=tuple(hidden) if output_hidden_states else None)


class Gemma3ForCausalLM(nn.Module):
    """The body and the LM head (tied to the embedding where the config says so, as in the released models)."""

    reads_doc_blocks = True  # core/tree_attention.py: takes DocBlocks masks without switching attention functions

    def __init__(self, config: Gemma3Config):
        super().__init__()
        self.config = config
        self.model = Gemma3TextModel(config)
        self.lm_head = Linear(config.hidden_size, config.vocab_size, bias=False)
        self.tie_weights()

    def tie_weights(self) -> None:
        if self.config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    @classmethod
    def from_state_dict(cls, config: Gemma3Config, state: dict[str, torch.Tensor]) -> Gemma3ForCausalLM:
        """The model with `state`'s tensors as its parameters (assigned, not copied: a memory-mapped file stays
        mapped), built on the meta device so no weight is initialised first. The keys must be exactly the
        checkpoint's (an LM head tied to the embedding may be absent); ValueError otherwise."""
        with torch.device("meta"):
            model = cls(config)
        expected = set(model.state_dict())
        tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
        missing = sorted(expected - set(state) - tied)
        unexpected = sorted(set(state) - expected)
        if missing or unexpected:
            raise ValueError(
                f"checkpoint keys do not match Gemma 3: missing {missing[:3]}, unexpected {unexpected[:3]}"
            )
        model.load_state_dict({k: v for k, v in state.items() if k not in tied}, strict=False, assign=True)
        model.tie_weights()
        on_meta = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
        if on_meta:
            raise ValueError(f"not loaded: {on_meta[:3]}")
        return model.requires_grad_(False).eval()  # inference only: a forward outside no_grad keeps no graph

    def new_cache(self) -> KVCache:
        return KVCache()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | dict[str, DocBlocks] | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
        past_key_values: KVCache | None = None,
        use_cache: bool = True,
        output_hidden_states: bool = False,
    ) -> Output:
        out = self.model(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache if cache is not None else past_key_values,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
        )
        logits = self.lm_head(out.last_hidden_state)
        softcap = self.config.final_logit_softcapping
        if softcap is not None:
            logits = torch.tanh(logits / softcap) * softcap
        out.logits = logits
        return out
