"""Average LoRA adapters of one lineage into one adapter (a "model soup").

Why: runs that start from the same adapter and train on different mixes end in the same basin; the average of
their weight updates is often better than any one of them (Wortsman et al., 2022, "Model soups"), and costs an
evaluation instead of a training run. LoRA factors cannot be averaged factor by factor (``B_1 A_1 + B_2 A_2`` is
not ``(B_1 + B_2)(A_1 + A_2)``), so the soup averages the updates ``ΔW = scaling · B A`` themselves:

- exactly, by stacking the weighted factors (the rank becomes the sum of the ranks), or
- truncated back to ``rank`` by an SVD of the stacked update, computed through QR factors so that no
  ``out × in`` matrix is ever formed.

The merged model that revprompt runs is the base plus ``ΔW``, so an exact soup scores exactly as the averaged
update would; the rank only changes the adapter's size on disk.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..core.errors import UserError

WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"


@dataclass
class SoupReport:
    """What `soup` wrote: the rank, and how much of the update a truncation kept (1.0 when exact)."""

    out: Path
    rank: int
    modules: int
    kept_energy_min: float
    kept_energy_mean: float


def _folder(adapter: Path) -> Path:
    folder = Path(adapter)
    if (folder / "adapter").is_dir() and not (folder / CONFIG).exists():
        folder = folder / "adapter"  # a training output folder: its adapter sits one level down
    return folder


def _sidecar_meta(folders: list[Path]) -> dict:
    """The soup's revprompt.json: the first adapter's, with the settings only a later one records added (a
    member trained in page mode brings its ``page_separator``: the soup holds part of what it learned there).
    Adapters that read text differently cannot share one adapter: an error, raised before anything is written."""
    meta: dict = {}
    seen = 0
    for folder in folders:
        side = folder / "revprompt.json"
        if not side.exists():
            continue
        theirs = json.loads(side.read_text())
        for key in ("format", "max_response_tokens", "page_separator"):
            if key in meta and key in theirs and meta[key] != theirs[key]:
                raise UserError(f"The adapters read text differently ({key}: {meta[key]!r} and {theirs[key]!r}).")
        seen = max(seen, int(theirs.get("examples_seen_total", 0)))
        meta = {**theirs, **meta}
    if meta:
        # Members of one lineage share their ancestor's pairs, so the soup has seen at least the most any one of
        # them saw (scripts/ship_adapter.py records the exact union from soup.json when it ships one).
        meta["examples_seen_total"] = seen
    return meta


def _write_sidecars(folders: list[Path], meta: dict, out: Path) -> None:
    """revprompt.json (from `_sidecar_meta`) and the tokenizer files of the first adapter that has them."""
    if meta:
        (out / "revprompt.json").write_text(json.dumps(meta, indent=2) + "\n")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        source = next((f / name for f in folders if (f / name).exists()), None)
        if source is not None:
            shutil.copyfile(source, out / name)


def _read(adapter: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    folder = _folder(adapter)
    if not (folder / CONFIG).exists() or not (folder / WEIGHTS).exists():
        raise UserError(f"{adapter} is not a LoRA adapter folder (no {CONFIG} and {WEIGHTS}).")
    config = json.loads((folder / CONFIG).read_text())
    if config.get("peft_type") != "LORA" or config.get("use_dora") or config.get("rank_pattern"):
        raise UserError(f"{adapter}: only plain LoRA adapters (no DoRA, no per-module ranks) can be averaged.")
    return config, load_file(str(folder / WEIGHTS))


def _scaling(config: dict) -> float:
    r = config["r"]
    return config["lora_alpha"] / (math.sqrt(r) if config.get("use_rslora") else r)


def soup(adapters: list[Path], out: Path, weights: list[float] | None = None, rank: int | None = None) -> SoupReport:
    """Write to ``out`` the adapter whose update is ``sum(w_i · ΔW_i)`` (weights default to equal, summing to 1)."""
    if len(adapters) < 2:
        raise UserError("Give at least two adapters to average.")
    weights = weights or [1.0 / len(adapters)] * len(adapters)
    if len(weights) != len(adapters) or any(w < 0 for w in weights):
        raise UserError("Give one non-negative weight per adapter.")
    read = [_read(a) for a in adapters]
    meta = _sidecar_meta([_folder(a) for a in adapters])
    configs = [c for c, _ in read]
    tensors = [t for _, t in read]
    if any(set(t) != set(tensors[0]) for t in tensors[1:]):
        raise UserError("The adapters target different modules; only adapters of one lineage can be averaged.")
    dtype = next(iter(tensors[0].values())).dtype
    for t in tensors[1:]:  # the widest of the members' dtypes: a bf16 shipped adapter with an fp32 run stays fp32
        dtype = torch.promote_types(dtype, next(iter(t.values())).dtype)
    stacked_rank = sum(c["r"] for c in configs)
    rank = min(rank or stacked_rank, stacked_rank)
    out_alpha = float(2 * rank)  # the lineage's convention: alpha = 2r, scaling 2
    out_scaling = out_alpha / rank

    merged: dict[str, torch.Tensor] = {}
    energies: list[float] = []
    prefixes = sorted({k.rsplit(".lora_", 1)[0] for k in tensors[0] if ".lora_A." in k})
    for prefix in prefixes:
        a_key, b_key = f"{prefix}.lora_A.weight", f"{prefix}.lora_B.weight"
        # ΔW = Σ w_i s_i B_i A_i = B_cat A_cat with the factor sqrt(w_i s_i / out_scaling) on both sides.
        factors = [math.sqrt(w * _scaling(c) / out_scaling) for w, c in zip(weights, configs, strict=True)]
        a_cat = torch.cat([f * t[a_key].double() for f, t in zip(factors, tensors, strict=True)], dim=0)
        b_cat = torch.cat([f * t[b_key].double() for f, t in zip(factors, tensors, strict=True)], dim=1)
        if rank < stacked_rank:
            qb, rb = torch.linalg.qr(b_cat)  # out × R, R × R
            qa, ra = torch.linalg.qr(a_cat.T)  # in × R, R × R
            u, s, vh = torch.linalg.svd(rb @ ra.T)
            energies.append(float((s[:rank] ** 2).sum() / (s**2).sum().clamp_min(1e-30)))
            root = s[:rank].sqrt()
            b_cat = qb @ (u[:, :rank] * root)
            a_cat = (root[:, None] * vh[:rank]) @ qa.T
        merged[a_key] = a_cat.to(dtype).contiguous()
        merged[b_key] = b_cat.to(dtype).contiguous()

    out = Path(out)
    folder = out / "adapter"
    folder.mkdir(parents=True, exist_ok=True)
    config = dict(configs[0], r=rank, lora_alpha=out_alpha, use_rslora=False)
    (folder / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    save_file(merged, str(folder / WEIGHTS))
    _write_sidecars([_folder(a) for a in adapters], meta, folder)
    (out / "soup.json").write_text(
        json.dumps(
            {
                "adapters": [str(_folder(a)) for a in adapters],
                "weights": weights,
                "rank": rank,
                "stacked_rank": stacked_rank,
            },
            indent=2,
        )
        + "\n"
    )
    return SoupReport(
        out=folder,
        rank=rank,
        modules=len(prefixes),
        kept_energy_min=min(energies, default=1.0),
        kept_energy_mean=sum(energies) / len(energies) if energies else 1.0,
    )
