"""The KV cache across the models the decoders run: transformers' (every release revprompt supports) and the own
Gemma 3 (core/gemma3.py).

transformers releases up to 5.1x call the cache `past_key_values` (the forward argument and the output field);
later ones call it `cache`. The decoders pass and read it through `cache_kwargs` and `output_cache`, so a machine
with an older transformers (a GPU image, say) decodes the same as one with the newest, instead of silently
running without a cache. The own Gemma 3 takes either name and has its own cache class; `new_cache` gives an
empty cache of the right kind.

Nothing here imports transformers for the own model: the release's name is looked up (in
`transformers.modeling_outputs`) only when a transformers model's cache is passed or read.
"""

from __future__ import annotations

import functools
from typing import Any

from .gemma3 import KVCache, Output


@functools.cache
def _name() -> str:
    from transformers.modeling_outputs import BaseModelOutputWithPast

    return "cache" if "cache" in BaseModelOutputWithPast.__dataclass_fields__ else "past_key_values"


def __getattr__(name: str) -> Any:
    """`CACHE_NAME`: the installed transformers' name for the cache, looked up on first use."""
    if name == "CACHE_NAME":
        return _name()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def new_cache(model) -> Any:
    """An empty KV cache for `model` (a causal LM). For a transformers model, a DynamicCache built without the
    model's config: plain key/value layers that keep every position (no sliding-window eviction), since
    revprompt's masks implement the window and the sweep indexes the cache slots itself."""
    make = getattr(model, "new_cache", None)
    if make is not None:
        return make()
    from transformers import DynamicCache

    return DynamicCache()


def cache_kwargs(cache: Any) -> dict[str, Any]:
    """The keyword argument that hands `cache` to a model's forward."""
    if isinstance(cache, KVCache):
        return {"cache": cache}
    return {_name(): cache}


def output_cache(out: Any) -> Any:
    """The cache a forward returned."""
    if isinstance(out, Output):
        return out.cache
    return getattr(out, _name())
