"""Faster linear layers for CPU inference: oneDNN with each weight pre-packed once.

A decoding step multiplies a few dozen rows by every weight matrix. For such thin products PyTorch's default
CPU linear re-lays-out the weight on every call; on the 262K-word LM head that alone made it run at a third
of the machine's speed. Packing the weight once for oneDNN removes that (bench/RESULTS.md has the numbers).

`pack_linears(model)` switches a model's nn.Linear layers to the packed path in place, keeping the modules,
their parameters and state_dict as they are. The original weights stay: anything the packed path does not
cover (another device or dtype, or autograd) runs the plain linear, and a weight changed in place is
re-packed on its next use.

bf16 weights are packed too where oneDNN computes bf16 natively (AVX512-BF16, AMX): the LM head then reads half
the bytes per step. Where it does not, bf16 stays on the plain path (the auto dtype picks fp32 there anyway).

**Half-precision weights for batches on CPUs without native bf16** (`pack_half`, `half_weights`). On plain AVX2,
fbgemm's fp16 linear (fp16 weights, converted to fp32 in registers, fp32 arithmetic) runs a one-thread decoding
step 1.2-1.3x faster than oneDNN fp32 on the body's shapes and 1.3-2x on the LM head: it reads half the bytes.
Its outputs differ from fp32 by the weights' fp16 rounding (about 1e-3 on a logit), a tenth of bf16's. Packing
costs about 7 s on a 2-core AVX2 CPU (fbgemm converts 268M weights one by one), so only a batch pays for it: the
engine packs once, at its first batch, and its worker threads run their forests inside `half_weights()`
(core/engine.py). Everything else, a single text included, stays on the fp32 path.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

import torch

_UNSUPPORTED = "unsupported"
_PACK_ROWS_HINT = 16  # the row count oneDNN tunes the layout for; decoding steps have a few to a few hundred


def available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def packable_dtypes() -> tuple[torch.dtype, ...]:
    """fp32 always; bf16 where oneDNN has a native bf16 kernel (else it would be emulated, and slow)."""
    try:
        bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        bf16 = False
    return (torch.float32, torch.bfloat16) if bf16 else (torch.float32,)


class _PackedLinear(torch.nn.Linear):
    """For the type checker only: the attributes `pack_linears` adds to an nn.Linear (nothing is built from it)."""

    _revprompt_dtypes: tuple[torch.dtype, ...]
    _revprompt_packed_key: tuple[int, int] | str | None
    _revprompt_packed: torch.Tensor | None
    _revprompt_half: object | None  # fbgemm's fp16 packing of the weight (`pack_half`), else None
    _revprompt_half_key: tuple[int, int]  # the weight it was made from (a weight changed since: not used)


_local = threading.local()


def half_available() -> bool:
    """fbgemm's fp16-weight linear is in this torch build and the CPU has what it needs (AVX2 and F16C)."""
    from .hardware import cpu_flags

    engines = getattr(torch.backends.quantized, "supported_engines", ())
    return (
        "fbgemm" in engines and hasattr(torch.ops.quantized, "linear_dynamic_fp16") and {"avx2", "f16c"} <= cpu_flags()
    )


@contextmanager
def half_weights() -> Iterator[None]:
    """Within this block (in this thread), linears with a half packing (`pack_half`) use it."""
    before = getattr(_local, "half", False)
    _local.half = True
    try:
        yield
    finally:
        _local.half = before


def pack_half(model: torch.nn.Module) -> int:
    """Give every packed fp32 linear of `model` an fbgemm fp16 packing of its weight (once; seconds: see the
    module's docstring). Returns how many linears have one."""
    count = 0
    for module in model.modules():
        if "_revprompt_packed_key" not in module.__dict__:
            continue
        packed = cast(_PackedLinear, module)
        if packed._revprompt_half is None and packed.weight.dtype == torch.float32:
            bias = None if packed.bias is None else packed.bias.detach()
            packed._revprompt_half = torch.ops.quantized.linear_prepack_fp16(packed.weight.detach(), bias)
            packed._revprompt_half_key = (packed.weight.data_ptr(), packed.weight._version)
        count += packed._revprompt_half is not None
    return count


def _half_forward(self: _PackedLinear, x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 1:  # fbgemm wants rows
        return torch.ops.quantized.linear_dynamic_fp16(x[None].contiguous(), self._revprompt_half)[0]
    return torch.ops.quantized.linear_dynamic_fp16(x.contiguous(), self._revprompt_half)


def _packed_forward(self: _PackedLinear, x: torch.Tensor) -> torch.Tensor:
    weight = self.weight
    if (
        self._revprompt_half is not None
        and getattr(_local, "half", False)
        and x.dtype == torch.float32
        and x.device.type == "cpu"
        and not torch.is_grad_enabled()
        and self._revprompt_half_key == (weight.data_ptr(), weight._version)
    ):
        return _half_forward(self, x)
    if (
        x.device.type != "cpu"
        or x.dtype != weight.dtype
        or weight.dtype not in self._revprompt_dtypes
        or (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
    ):
        return torch.nn.functional.linear(x, weight, self.bias)
    key = (weight.data_ptr(), weight._version)
    if self._revprompt_packed_key != key:
        if self._revprompt_packed_key == _UNSUPPORTED:
            return torch.nn.functional.linear(x, weight, self.bias)
        try:
            self._revprompt_packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), _PACK_ROWS_HINT)
        except RuntimeError:  # a oneDNN build without this path (some non-x86 wheels): stay on the plain one
            self._revprompt_packed_key = _UNSUPPORTED
            return torch.nn.functional.linear(x, weight, self.bias)
        self._revprompt_packed_key = key
    bias = None if self.bias is None else self.bias.detach()
    return torch.ops.mkldnn._linear_pointwise(x.contiguous(), self._revprompt_packed, bias, "none", [None], "")


def pack_linears(model: torch.nn.Module) -> int:
    """Route every nn.Linear of a CPU fp32 (or, where native, bf16) model through packed oneDNN weights.
    Returns how many it switched; 0 where the model is elsewhere, in another dtype, or oneDNN is missing.
    Calling it twice is harmless."""
    if not available():
        return 0
    dtypes = packable_dtypes()
    switched = 0
    for module in model.modules():
        if not isinstance(module, torch.nn.Linear) or "_revprompt_packed_key" in module.__dict__:
            continue
        if module.weight.device.type != "cpu" or module.weight.dtype not in dtypes:
            continue
        packed = cast(_PackedLinear, module)
        packed._revprompt_dtypes = dtypes
        packed._revprompt_packed_key = None
        packed._revprompt_packed = None
        packed._revprompt_half = None
        setattr(packed, "forward", types.MethodType(_packed_forward, packed))  # noqa: B010 (mypy: no method assign)
        switched += 1
    return switched
