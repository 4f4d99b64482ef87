"""Load a local model directory quickly: the warm start is most of what a one-sentence `analyze` costs.

transformers' generic loaders spend seconds on a 270M model: AutoTokenizer parses the 33 MB tokenizer.json in
Python several times to rebuild a GemmaTokenizer, and from_pretrained initialises every weight before
overwriting it. Here instead:

* the tokenizer is read from tokenizer.json without transformers (core/tokenizer.py): after the first load, from
  its SentencePiece twin in the cache (0.1 s against 1.1-1.5 s for the Rust `tokenizers` object on Gemma's 33 MB
  file), with the special tokens of tokenizer_config.json. A directory without a tokenizer.json gets one written to
  the cache the first time (through the slow path), so the next start is fast;
* the model is built without weight initialisation and the safetensors file, memory-mapped, is assigned as
  its parameters (no copy). bf16 from an fp32 file we own (the cache) is written once as a bf16 file beside
  it, so later bf16 starts map half the bytes and cast nothing;
* a Gemma 3 text checkpoint (the packaged model and its fine-tunes) becomes revprompt's own inference model
  (core/gemma3.py): transformers' model classes cost ~2 s of imports (`transformers.modeling_utils`) that a
  one-sentence `analyze` would otherwise spend. Any other model, or REVPROMPT_HF_MODEL=1, gets transformers';
* transformers' "Loading weights" progress bars are switched off: a warm start prints nothing.

Anything unusual (sharded or missing safetensors, keys that don't match the architecture) falls back to
from_pretrained / AutoTokenizer, which handle every layout.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from .gemma3 import Gemma3Config, Gemma3ForCausalLM

from .tokenizer import SPECIAL

log = logging.getLogger("revprompt.model")

WEIGHTS = "model.safetensors"
# Set to 1: transformers' model and tokenizer instead of revprompt's own (core/gemma3.py, core/tokenizer.py), to
# compare the two (bench/bench_latency.py's legacy side, tests/test_gemma3.py).
HF_MODEL_ENV = "REVPROMPT_HF_MODEL"
_DTYPE_FILES = {"bfloat16": "model.bfloat16.safetensors"}


def quiet_transformers() -> None:
    """No progress bars or info chatter from transformers while revprompt loads a model."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


# -- tokenizer ----------------------------------------------------------------------------------------------
def _special_tokens(path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):  # the later file wins
        file = path / name
        if not file.exists():
            continue
        try:
            config = json.loads(file.read_text())
        except ValueError:
            continue
        for key in SPECIAL:
            value = config.get(key)
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str) and value:
                found[key] = value
    return found


def _wrap(tokenizer_json: Path, special: dict[str, str], name: str):
    """The Rust tokenizer behind revprompt's thin interface, or with REVPROMPT_HF_MODEL=1 (the whole transformers
    path, for comparisons) transformers' PreTrainedTokenizerFast around the same file."""
    from .config import truthy

    if truthy(os.environ.get(HF_MODEL_ENV, "")):
        quiet_transformers()
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_json), name_or_path=name, **special)
    from .model import cache_dir
    from .tokenizer import JsonTokenizer

    return JsonTokenizer.from_file(tokenizer_json, special, name, cache=cache_dir() / "tokenizer-twins")


def _cached_tokenizer_dir(path: Path) -> Path:
    """Where a fast tokenizer.json for a directory that has none is kept (keyed by its tokenizer files)."""
    from .model import cache_dir

    h = hashlib.sha256(str(path.resolve()).encode())
    for f in sorted(path.glob("tokenizer*")) + sorted(path.glob("special_tokens_map.json")):
        h.update(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}".encode())
    return cache_dir() / "tokenizers" / h.hexdigest()[:16]


def load_tokenizer(path: Path):
    """A fast tokenizer for a model directory, read straight from tokenizer.json when there is one (by the Rust
    `tokenizers` library alone: core/tokenizer.py), else through transformers' AutoTokenizer."""
    path = Path(path)
    if (path / "tokenizer.json").exists():
        try:
            return _wrap(path / "tokenizer.json", _special_tokens(path), str(path))
        except Exception as exc:  # an unusual tokenizer.json: the generic loader knows more layouts
            log.info("fast tokenizer load failed (%s: %s); using AutoTokenizer", type(exc).__name__, exc)
    else:
        cached = _cached_tokenizer_dir(path)
        if (cached / "tokenizer.json").exists():
            try:
                return _wrap(cached / "tokenizer.json", _special_tokens(cached), str(path))
            except Exception as exc:
                log.info("cached tokenizer unusable (%s); rebuilding it", exc)
    quiet_transformers()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if not (path / "tokenizer.json").exists() and getattr(tokenizer, "backend_tokenizer", None) is not None:
        _save_fast_copy(tokenizer, _cached_tokenizer_dir(path))
    return tokenizer


def _save_fast_copy(tokenizer, target: Path) -> None:
    try:
        tmp = target.with_name(target.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        tokenizer.backend_tokenizer.save(str(tmp / "tokenizer.json"))
        special = {k: getattr(tokenizer, k) for k in SPECIAL if isinstance(getattr(tokenizer, k, None), str)}
        (tmp / "tokenizer_config.json").write_text(json.dumps(special))
        if not target.exists():
            os.replace(tmp, target)
    except OSError as exc:  # a read-only cache only costs speed
        log.info("could not cache the fast tokenizer (%s)", exc)


# -- model --------------------------------------------------------------------------------------------------
def _torch_dtype(dtype: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]


def _file_dtypes(weights: Path) -> set[str]:
    """The tensor dtypes a safetensors file holds, from its header (no tensor is read)."""
    with open(weights, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    return {v["dtype"] for k, v in header.items() if k != "__metadata__"}


def _owned(path: Path) -> bool:
    """Directories revprompt built in its cache (the base, merged adapters): it may add files there."""
    from .model import cache_dir

    try:
        path.resolve().relative_to(cache_dir().resolve())
        return True
    except ValueError:
        return False


def _weights_for(path: Path, dtype: str) -> Path:
    """The safetensors file to map: a once-written copy in the asked dtype where we own the directory."""
    weights = path / WEIGHTS
    alt = _DTYPE_FILES.get(dtype)
    if alt is None or not _owned(path):
        return weights
    if (path / alt).exists():
        return path / alt
    if _file_dtypes(weights) != {"F32"}:
        return weights
    from safetensors.torch import load_file, save_file

    torch_dtype = _torch_dtype(dtype)
    state = {k: v.to(torch_dtype) for k, v in load_file(str(weights)).items()}
    tmp = path / (alt + ".tmp")
    try:
        save_file(state, str(tmp), metadata={"format": "pt"})
        os.replace(tmp, path / alt)  # atomic: a killed write never leaves a half file under the real name
    except OSError as exc:
        log.info("could not cache %s weights (%s)", dtype, exc)
        tmp.unlink(missing_ok=True)
        return weights
    return path / alt


def _mapped_state(path: Path, dtype: str) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors, memory-mapped, in `dtype` (cast only where the file holds another one)."""
    from safetensors.torch import load_file

    torch_dtype = _torch_dtype(dtype)
    state = load_file(str(_weights_for(path, dtype)))
    return {k: v.to(torch_dtype) if v.is_floating_point() else v for k, v in state.items()}


def _own_config(path: Path) -> Gemma3Config | None:
    """The own Gemma 3's config for a directory it can run exactly (core/gemma3.py `unsupported`), else None:
    another architecture, an unusual config, or REVPROMPT_HF_MODEL=1 (transformers' model, for comparisons)."""
    from .config import truthy

    if truthy(os.environ.get(HF_MODEL_ENV, "")):
        return None
    try:
        raw = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return None
    from .gemma3 import Gemma3Config, unsupported

    reason = unsupported(raw)
    if reason:
        log.info("%s: transformers' model (%s)", path, reason)
        return None
    return Gemma3Config.from_dict(raw)


def _assemble_own(path: Path, dtype: str, config: Gemma3Config) -> Gemma3ForCausalLM:
    """revprompt's own Gemma 3, its parameters the memory-mapped tensors of the file."""
    from .gemma3 import Gemma3ForCausalLM

    return Gemma3ForCausalLM.from_state_dict(config, _mapped_state(path, dtype))


def _assemble(path: Path, dtype: str):
    """transformers' model built without initialisation, its parameters the memory-mapped tensors of the file."""
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.initialization import no_init_weights

    torch_dtype = _torch_dtype(dtype)
    state = _mapped_state(path, dtype)
    config = AutoConfig.from_pretrained(str(path))
    with no_init_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    result = model.load_state_dict(state, strict=False, assign=True)
    model.tie_weights()
    loaded = {model.get_parameter(k).data_ptr() for k in state if k in dict(model.named_parameters())}
    untied = [k for k in result.missing_keys if model.get_parameter(k).data_ptr() not in loaded]
    if untied or result.unexpected_keys:
        raise ValueError(
            f"checkpoint keys do not match the architecture: missing {untied[:3]}, "
            f"unexpected {result.unexpected_keys[:3]}"
        )
    return model


def load_model(path: Path, dtype: str = "float32", device: str = "cpu"):
    """The causal LM of a local directory in `dtype` on `device`, in eval mode: revprompt's own Gemma 3 where
    the directory holds one it runs exactly (`_own_config`), else transformers' model."""
    path = Path(path)
    model: torch.nn.Module | None = None
    if (path / WEIGHTS).exists():
        own = _own_config(path)
        if own is not None:
            try:
                model = _assemble_own(path, dtype, own)
            except Exception as exc:  # keys or shapes not the expected ones: transformers' model reads it
                log.info("own Gemma 3 load failed (%s: %s); using transformers' model", type(exc).__name__, exc)
        if model is None:
            quiet_transformers()
            try:
                model = _assemble(path, dtype)
            except Exception as exc:  # an unusual checkpoint: from_pretrained knows more layouts
                log.info("fast model load failed (%s: %s); using from_pretrained", type(exc).__name__, exc)
    if model is None:
        quiet_transformers()
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=_torch_dtype(dtype))
    model.eval()
    if device != "cpu":
        model.to(device)
    return model
