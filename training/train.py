"""Fine-tune a causal LM to write the prompt behind a response. Read it top to bottom: config, data, model,
optimiser, loop, checkpoints. LoRA by default (a few MB to ship); `method="full"` trains every weight.
Runs unchanged on CPU or CUDA; bf16 autocast where the hardware has it.
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..core.hardware import cpu_has_native_bf16  # shared with inference (auto dtype)
from ..core.prompt_format import PAGE_SEPARATOR
from .data import batches, has_pages, read_pairs, sample_mix, tokenize_pairs


@dataclass
class TrainConfig:
    data: list[str]
    out_dir: str
    base_model: str = "base"  # anything revprompt.core.model.resolve() understands
    method: str = "lora"  # "lora" or "full"
    max_examples: int | None = None
    epochs: int = 1
    max_steps: int | None = None
    max_minutes: float | None = None  # stop cleanly (and save) after this long
    batch_size: int = 4
    grad_accum: int = 2
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 30
    max_seq_len: int = 2048
    max_response_tokens: int | None = None  # a shorter response cap is the main CPU speed lever
    max_prompt_tokens: int = 256
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0  # one pass over the data needs no dropout; its masks cost a tenth of a CPU step
    lora_targets: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    # The lowest N decoder layers get no LoRA, so no backward pass runs through them; None: a third of them.
    freeze_layers: int | None = 0
    schedule: str = "wsd"  # "wsd": warmup, stable, decay to 0 over the last decay_fraction; "cosine": old default
    decay_fraction: float = 0.2
    init_adapter: str | None = None  # continue training this LoRA adapter (a segment after an earlier one)
    # Examples of the batch stream that earlier segments already trained on (their examples_seen_total): the
    # stream is the same for the same data, seed and batch size, so a later segment goes on with new pairs.
    skip_examples: int = 0
    gradient_checkpointing: bool = False
    # The separator page pairs were trained with (core/prompt_format.py PAGE_SEPARATOR), written to the adapter's
    # revprompt.json so the engine reads pages with it; set by train() when the data or the adapter continued has
    # page pairs (a bundle's manifest says so for pre-tokenised examples).
    page_separator: str | None = None
    bf16: bool | None = None  # None: bf16 where the hardware computes it natively (CUDA, AVX512-BF16/AMX CPUs)
    save_every: int = 50  # optimiser steps between checkpoints
    eval_every: int = 0  # optimiser steps between held-out losses (train(eval_examples=...)); 0: only at the ends
    # Prompt positions per float32 cross-entropy block (prompt_loss); 0: one block over all of them, as the first
    # trainer did (bench/bench_train.py times that as the old step).
    loss_rows: int = 4
    seed: int = 0
    resume: bool = True
    progress: bool = True


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _use_bf16(cfg: TrainConfig, device: torch.device) -> bool:
    if cfg.bf16 is not None:
        return cfg.bf16
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return cpu_has_native_bf16()


def _num_layers(model) -> int:
    config = getattr(model, "config", None)
    config = getattr(config, "text_config", None) or config
    return int(config.num_hidden_layers)


def load_model_and_tokenizer(cfg: TrainConfig, model=None, tokenizer=None, bf16_base: bool = False):
    """The base to fine-tune, wrapped in LoRA unless full fine-tuning. Tests pass a tiny model in.

    `bf16_base`: keep the frozen base weights in bf16 (LoRA's own weights stay fp32). Under bf16 autocast
    this saves casting every weight again on every forward, a tenth of a CPU step.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if model is None:
        from ..core.fast_load import quiet_transformers
        from ..core.model import resolve

        quiet_transformers()  # the training bar is the one progress line; no "Loading weights" bar above it
        spec = resolve(cfg.base_model)
        model = AutoModelForCausalLM.from_pretrained(str(spec.path), dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(str(spec.path))
    if bf16_base and cfg.method == "lora":
        model.to(torch.bfloat16)
    n_layers = _num_layers(model)
    if cfg.freeze_layers is None:
        cfg.freeze_layers = n_layers // 3  # 6 of Gemma 3 270M's 18
    if not 0 <= cfg.freeze_layers < n_layers:
        raise ValueError(f"freeze_layers must be between 0 and {n_layers - 1}")
    if cfg.method == "lora" and cfg.init_adapter:
        model = _continue_adapter(model, cfg, n_layers)
    elif cfg.method == "lora":
        from peft import LoraConfig, get_peft_model

        layers = list(range(cfg.freeze_layers, n_layers)) if cfg.freeze_layers else None
        lora = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=cfg.lora_targets,
            layers_to_transform=layers,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
    elif cfg.method == "full":
        # Frozen embeddings and lower layers: autograd records nothing until the first trainable layer.
        model.get_input_embeddings().weight.requires_grad_(False)
        for i, layer in enumerate(model.model.layers):
            layer.requires_grad_(i >= cfg.freeze_layers)
    else:
        raise ValueError(f"unknown training method {cfg.method!r}")
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if cfg.method == "lora":
            model.enable_input_require_grads()
    return model, tokenizer


def _continue_adapter(model, cfg: TrainConfig, n_layers: int):
    """Wrap `model` in the adapter of an earlier segment, grown when this segment asks for more capacity.

    The loss of a segment can plateau because the adapter is too small, not because the data ran out. Asking
    for a higher `--lora-r` or fewer `--freeze-layers` than the earlier adapter has grows it instead of
    starting over: its A rows and B columns are copied into the first `r_old` ranks of the new one, the new
    ranks start with B = 0 (PEFT's own initialisation) and newly covered layers start at zero too, so the grown
    model computes exactly what the earlier adapter did and training goes on from there. The scale alpha/r is
    kept, so a rank learns at the same pace it did. Growth never removes capacity: rank and layers are the
    larger of the two.
    """
    from peft import LoraConfig, PeftModel, get_peft_model
    from safetensors.torch import load_file

    old = LoraConfig.from_pretrained(cfg.init_adapter)
    old_layers = set(old.layers_to_transform or range(n_layers))
    want_layers = set(range(cfg.freeze_layers, n_layers))
    if cfg.lora_r <= old.r and want_layers <= old_layers:
        # The adapter goes on as it is: record its own shape, not the command line's defaults.
        cfg.lora_r, cfg.lora_alpha, cfg.freeze_layers = old.r, old.lora_alpha, min(old_layers)
        return PeftModel.from_pretrained(model, cfg.init_adapter, is_trainable=True)

    r = max(cfg.lora_r, old.r)
    layers = sorted(old_layers | want_layers)
    alpha = old.lora_alpha * r / old.r  # the same scale alpha/r as the earlier adapter
    cfg.lora_r, cfg.lora_alpha, cfg.freeze_layers = r, alpha, layers[0]
    grown = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=sorted(old.target_modules),
        layers_to_transform=None if len(layers) == n_layers else layers,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, grown)
    earlier = load_file(str(Path(cfg.init_adapter) / "adapter_model.safetensors"))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in earlier.items():
            target = params[
                name.replace(".lora_A.weight", ".lora_A.default.weight").replace(
                    ".lora_B.weight", ".lora_B.default.weight"
                )
            ]
            # PEFT drew every A row (kaiming) and zeroed every B: the earlier ranks go in first, the new ones stay.
            if ".lora_A." in name:
                target[: old.r].copy_(tensor)
            else:
                target[:, : old.r].copy_(tensor)
    return model


# Prompt positions per LM-head product, and per float32 cross-entropy inside it. The loss is the same sum either
# way; 4 x 262K float32 log-probabilities (4 MB) stay in the cache through the softmax and its backward, where one
# (positions x 262K) block streams through memory several times: a third faster for this part of the step.
HEAD_ROWS, LOSS_ROWS = 256, 4


def prompt_loss(model, batch: dict, loss_rows: int = LOSS_ROWS) -> torch.Tensor:
    """Cross-entropy on the prompt tokens only, with the LM head applied only where there is a label.

    The 262K-word LM head over every response position would cost several times the rest of the model;
    the loss needs it only on the few prompt positions. `loss_rows` <= 0: one cross-entropy over them all.
    """
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = causal_lm.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    targets = batch["labels"][:, 1:]
    keep = targets != -100
    hidden, targets = hidden[:, :-1][keep], targets[keep]
    softcap = getattr(causal_lm.config, "final_logit_softcapping", None)
    if loss_rows <= 0:
        logits = causal_lm.lm_head(hidden)
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        return torch.nn.functional.cross_entropy(logits.float(), targets)
    total = hidden.new_zeros((), dtype=torch.float32)
    for h, t in zip(hidden.split(HEAD_ROWS), targets.split(HEAD_ROWS)):
        logits = causal_lm.lm_head(h)
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        for rows, want in zip(logits.split(loss_rows), t.split(loss_rows)):  # split: one concatenating backward
            total = total + torch.nn.functional.cross_entropy(rows.float(), want, reduction="sum")
    return total / max(targets.numel(), 1)


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warmup, then either warmup-stable-decay (flat at the peak, then linear to zero over the last
    `decay_fraction` of the steps: every segment ends decayed, whatever its length) or cosine to 10%."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "wsd":
        decay_steps = max(1, round(total * cfg.decay_fraction))
        decay_start = total - decay_steps
        if step < decay_start:
            return cfg.lr
        return cfg.lr * max(0.0, (total - step) / (decay_steps + 1))
    progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def train(cfg: TrainConfig, model=None, tokenizer=None, pairs=None, examples=None, eval_examples=None) -> dict:
    """Train and save to cfg.out_dir; returns the training record (also written as training_record.json).

    `examples`: already tokenised and in stream order (a bundle from training/remote.py, made where the
    tokenizer is); then no tokenizer is needed and the pad id comes from the model's config. `eval_examples`:
    held-out pairs whose mean prompt loss is recorded at the start, every `eval_every` steps and at the end.
    """
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    device = _device()
    bf16 = _use_bf16(cfg, device)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_dir = out / "checkpoint"

    # -- data -------------------------------------------------------------------------------------------
    model, tokenizer = load_model_and_tokenizer(cfg, model, tokenizer, bf16_base=bf16)
    if examples is None:
        pairs = sample_mix(pairs if pairs is not None else read_pairs(cfg.data), None, cfg.seed)
        pairs = pairs[: cfg.max_examples] if cfg.max_examples else pairs
        examples = tokenize_pairs(tokenizer, pairs, cfg.max_seq_len, cfg.max_response_tokens, cfg.max_prompt_tokens)
        if has_pages(pairs):
            cfg.page_separator = PAGE_SEPARATOR
    # an adapter that learned pages under their separator keeps it, whatever this segment's data
    cfg.page_separator = cfg.page_separator or _prior_page_separator(cfg.init_adapter)
    examples = examples[: cfg.max_examples] if cfg.max_examples else examples
    if cfg.skip_examples % cfg.batch_size:
        raise ValueError(f"skip_examples ({cfg.skip_examples}) must be a multiple of the batch size ({cfg.batch_size})")
    if cfg.skip_examples >= len(examples) * cfg.epochs:
        raise ValueError(f"no pairs left after skipping the first {cfg.skip_examples} of the stream")
    prior_seen = _prior_examples_seen(cfg.init_adapter)
    pad_id = tokenizer.pad_token_id if tokenizer is not None else model.config.pad_token_id
    left = len(examples) * cfg.epochs - cfg.skip_examples
    total_steps = cfg.max_steps or math.ceil(left / (cfg.batch_size * cfg.grad_accum))

    # -- model and optimiser ----------------------------------------------------------------------------
    model.to(device)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    fused = device.type == "cuda"
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    state = {
        "step": 0,
        "examples_seen": 0,
        "losses": [],
        "lrs": [],
        "seconds": 0.0,
        "planned_steps": total_steps,
        "decaying": False,
        "eval_losses": [],
    }
    if cfg.resume and (ckpt_dir / "state.json").exists():
        state = {**state, **_load_checkpoint(ckpt_dir, model, optimizer, cfg)}
        if not (state["decaying"] and cfg.max_minutes is not None):
            state["planned_steps"] = total_steps  # a re-run may ask for more steps than the first run planned

    # -- loop -------------------------------------------------------------------------------------------
    from tqdm import tqdm

    bar = tqdm(
        total=state["planned_steps"],
        initial=state["step"],
        desc="training",
        unit="step",
        disable=not cfg.progress,
        dynamic_ncols=True,
    )
    started = time.perf_counter() - state["seconds"]
    run_started, run_first_step = time.perf_counter(), state["step"]
    stream = _batch_stream(
        examples,
        cfg,
        pad_id,
        skip_batches=cfg.skip_examples // cfg.batch_size + state["step"] * cfg.grad_accum,
    )
    window: list[float] = []
    stop_reason = "done"
    if eval_examples and not state["eval_losses"]:
        state["eval_losses"].append([state["step"], held_out_loss(model, eval_examples, pad_id, device, bf16)])
    while state["step"] < state["planned_steps"]:
        if cfg.max_minutes is not None and time.perf_counter() - started > cfg.max_minutes * 60 + 120:
            stop_reason = "time limit"  # only when the decay itself overran its estimate by minutes
            break
        if cfg.max_minutes is not None and not state["decaying"] and state["step"] > run_first_step + 2:
            # Plan the steps that fit in the time left, so a time-limited segment still ends its decay.
            per_step = (time.perf_counter() - run_started) / (state["step"] - run_first_step)
            left = cfg.max_minutes * 60 - (time.perf_counter() - started)
            state["planned_steps"] = min(total_steps, state["step"] + max(1, int(left / per_step)))
            bar.total = state["planned_steps"]
        lr = lr_at(state["step"], state["planned_steps"], cfg)
        if cfg.schedule == "wsd" and state["step"] >= cfg.warmup_steps and lr < cfg.lr:
            state["decaying"] = True  # from here the plan is fixed: the decay runs to its end
        state["lrs"].append(lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for _ in range(cfg.grad_accum):
            batch = {k: v.to(device) for k, v in next(stream).items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = prompt_loss(model, batch, cfg.loss_rows) / cfg.grad_accum
            loss.backward()
            step_loss += loss.item()
            state["examples_seen"] += batch["input_ids"].shape[0]
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        state["step"] += 1
        state["losses"].append(round(step_loss, 4))
        window = (window + [step_loss])[-20:]
        elapsed = time.perf_counter() - started
        bar.set_postfix(loss=f"{sum(window) / len(window):.3f}", ex_s=f"{state['examples_seen'] / elapsed:.2f}")
        bar.update(1)
        if eval_examples and cfg.eval_every and state["step"] % cfg.eval_every == 0:
            state["eval_losses"].append([state["step"], held_out_loss(model, eval_examples, pad_id, device, bf16)])
            bar.write(f"step {state['step']}: held-out loss {state['eval_losses'][-1][1]:.4f}")
        if state["step"] % cfg.save_every == 0:
            state["seconds"] = elapsed
            _save_checkpoint(ckpt_dir, model, optimizer, state, cfg)
    bar.close()
    state["seconds"] = time.perf_counter() - started
    if eval_examples and state["eval_losses"][-1][0] != state["step"]:
        state["eval_losses"].append([state["step"], held_out_loss(model, eval_examples, pad_id, device, bf16)])
    _save_checkpoint(ckpt_dir, model, optimizer, state, cfg)

    # -- export -----------------------------------------------------------------------------------------
    final = out / ("adapter" if cfg.method == "lora" else "model")
    model.save_pretrained(final)
    if tokenizer is not None:
        tokenizer.save_pretrained(final)
    (final / "revprompt.json").write_text(
        json.dumps(
            {
                "format": "{response}\\n###\\n{prompt}<eos>",
                "max_response_tokens": cfg.max_response_tokens,
                "max_seq_len": cfg.max_seq_len,
                "base_model": cfg.base_model,
                "method": cfg.method,
                "examples_seen_total": prior_seen + state["examples_seen"],
                **({"page_separator": cfg.page_separator} if cfg.page_separator else {}),
            },
            indent=2,
        )
    )
    record = {
        "config": asdict(cfg),
        "examples_available": len(examples),
        "examples_seen": state["examples_seen"],
        "examples_seen_total": prior_seen + state["examples_seen"],
        "steps": state["step"],
        "stop_reason": stop_reason,
        "lr_first": state["lrs"][0] if state["lrs"] else None,
        "lr_last": state["lrs"][-1] if state["lrs"] else None,
        "losses": state["losses"],
        "seconds": round(state["seconds"], 1),
        "examples_per_second": round(state["examples_seen"] / max(state["seconds"], 1e-9), 3),
        "first_losses": state["losses"][:10],
        "last_losses": state["losses"][-10:],
        "mean_loss_first_20": _mean(state["losses"][:20]),
        "mean_loss_last_20": _mean(state["losses"][-20:]),
        "held_out_losses": state["eval_losses"],
        "device": _describe_device(device),
        "bf16": bf16,
        "torch": torch.__version__,
        "output": str(final),
    }
    (out / "training_record.json").write_text(json.dumps(record, indent=2))
    return record


@torch.no_grad()
def held_out_loss(model, examples, pad_id: int, device: torch.device, bf16: bool, batch_size: int = 32) -> float:
    """Mean prompt loss over held-out examples (each batch weighted by its prompt tokens), in eval mode."""
    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    for batch in batches(examples, batch_size, pad_id, seed=0):
        batch = {k: v.to(device) for k, v in batch.items()}
        n = int((batch["labels"][:, 1:] != -100).sum())
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            total += prompt_loss(model, batch).item() * n
        tokens += n
    model.train(was_training)
    return round(total / max(tokens, 1), 4)


def _batch_stream(examples, cfg: TrainConfig, pad_id: int, skip_batches: int):
    """Endless batches, epoch after epoch with a new shuffle each; skips what a resumed run already saw."""
    epoch = 0
    seen = 0
    while True:
        for batch in batches(examples, cfg.batch_size, pad_id, seed=cfg.seed + epoch):
            seen += 1
            if seen > skip_batches:
                yield batch
        epoch += 1


def _save_checkpoint(path: Path, model, optimizer, state: dict, cfg: TrainConfig) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(tmp)
    torch.save({"optimizer": optimizer.state_dict(), "rng": torch.get_rng_state()}, tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps(state))
    if path.exists():
        import shutil

        shutil.rmtree(path)
    os.replace(tmp, path)  # a kill mid-save leaves the previous checkpoint intact


def _load_checkpoint(path: Path, model, optimizer, cfg: TrainConfig) -> dict:
    from safetensors.torch import load_file

    weights = path / ("adapter_model.safetensors" if cfg.method == "lora" else "model.safetensors")
    tensors = load_file(str(weights))
    if cfg.method == "lora":
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, tensors)
    else:
        model.load_state_dict(tensors, strict=False)
    saved = torch.load(path / "optimizer.pt", weights_only=False)
    optimizer.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["rng"])
    return json.loads((path / "state.json").read_text())


def _prior_examples_seen(adapter: str | None) -> int:
    """Pairs the adapter we continue from had already seen (its revprompt.json), so totals accumulate."""
    if not adapter:
        return 0
    meta = Path(adapter) / "revprompt.json"
    try:
        return int(json.loads(meta.read_text()).get("examples_seen_total", 0))
    except (OSError, ValueError):
        return 0


def _prior_page_separator(adapter: str | None) -> str | None:
    if not adapter:
        return None
    try:
        value = json.loads((Path(adapter) / "revprompt.json").read_text()).get("page_separator")
    except (OSError, ValueError):
        return None
    return value if isinstance(value, str) and value else None


def _mean(xs):
    return round(sum(xs) / len(xs), 4) if xs else None


def _describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(0)
    return (
        f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"
    )
