"""Faster linear layers for CPU inference: oneDNN with each weight pre-packed once.

A decoding step multiplies a few dozen rows by every weight matrix. For such thin products PyTorch's default
CPU linear re-lays-out the weight on every call; on the 262K-word LM head that alone made it run at a third
of the machine's speed. Packing the weight once for oneDNN removes that (bench/RESULTS.md has the numbers).

`pack_linears(model)` switches a model's nn.Linear layers to the packed path in place, keeping the modules,
their parameters and state_dict as they are. The original weights stay: anything the packed path does not
cover (another device or dtype, or autograd) runs the plain linear, and a weight changed in place is
re-packed on its next use.
"""

from __future__ import annotations

import types

import torch

_UNSUPPORTED = "unsupported"
_PACK_ROWS_HINT = 16  # the row count oneDNN tunes the layout for; decoding steps have a few to a few hundred


def available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _packed_forward(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    weight = self.weight
    if (
        x.device.type != "cpu"
        or x.dtype != torch.float32
        or weight.dtype != torch.float32
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
    """Route every nn.Linear of a CPU fp32 model through packed oneDNN weights. Returns how many it switched;
    0 where the model is elsewhere, in another dtype, or oneDNN is missing. Calling it twice is harmless."""
    if not available():
        return 0
    switched = 0
    for module in model.modules():
        if not isinstance(module, torch.nn.Linear) or "_revprompt_packed_key" in module.__dict__:
            continue
        if module.weight.device.type != "cpu" or module.weight.dtype != torch.float32:
            continue
        module._revprompt_packed_key = None
        module._revprompt_packed = None
        module.forward = types.MethodType(_packed_forward, module)
        switched += 1
    return switched
