"""One difference between the transformers releases revprompt supports: the KV cache's name.

Releases up to 5.1x call it `past_key_values` (the forward argument and the output field); later ones call it
`cache`. The decoders pass and read it through these two helpers, so a machine with an older transformers
(a GPU image, say) decodes the same as one with the newest, instead of silently running without a cache.
"""

from __future__ import annotations

from typing import Any


def _name() -> str:
    from transformers.modeling_outputs import BaseModelOutputWithPast

    return "cache" if "cache" in BaseModelOutputWithPast.__dataclass_fields__ else "past_key_values"


CACHE_NAME = _name()


def cache_kwargs(cache: Any) -> dict[str, Any]:
    """The keyword argument that hands `cache` to a model's forward."""
    return {CACHE_NAME: cache}


def output_cache(out: Any) -> Any:
    """The cache a forward returned."""
    return getattr(out, CACHE_NAME)
