"""A preference segment: make the true prompt more likely than the model's own fluent wrong guesses.

Why. Perplexity ranks the sweep's candidates, and on dev600 the best of the ten is clearly closer to the true
prompt than the one ranked first (0.778 against 0.733 cosine): the model often finds the prompt and then rates
a fluent wrong guess above it. Plain fine-tuning only raises the true prompt; it never says which of the
model's own guesses are wrong. This segment does, with the pairs `scripts/mine_preferences.py` mines from
training responses: the sweep's candidates with their perplexity and their token-set F1 to the true prompt.

The objective is DPO (Rafailov et al., 2023) on length-normalised log-probabilities, because the ranking
compares mean NLL per token, not sums: for a response x, the true prompt c and a rejected guess r,

    margin = beta * [(mean log p(c|x) - mean log p_ref(c|x)) - (mean log p(r|x) - mean log p_ref(r|x))]
    loss   = -log sigmoid(margin) + sft_weight * mean NLL(c|x)

p_ref is the adapter the segment starts from (its log-probabilities are computed once, before the first step);
the NLL term keeps the true prompt's own likelihood from being traded away (as in RPO, Pang et al., 2024).
Schedule, adapter growth and export are the SFT trainer's (training/train.py); read that file first.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .data import Example, Pair, collate, tokenize_pairs
from .train import (
    TrainConfig,
    _describe_device,
    _device,
    _prior_examples_seen,
    _use_bf16,
    load_model_and_tokenizer,
    lr_at,
)


@dataclass
class Preference:
    response: str
    chosen: str  # the true prompt
    rejected: str  # a candidate the sweep ranked too high


def preferences_from_mined(
    rows: list[dict], gap: float = 0.15, miss: float = 0.3, per_row: int = 2
) -> list[Preference]:
    """Preference pairs from mined sweeps (rows with prompt, response and ranked candidates with `f1`).

    Rejected: candidates ranked above the row's best one (highest token-set F1 to the true prompt) with an F1
    at least `gap` lower (ranking mistakes); when there are none, the top-1 if its F1 is under `miss` (a clear
    miss). At most `per_row` per response, best-ranked first. A candidate equal to the true prompt is never
    rejected.
    """
    out = []
    for row in rows:
        cands = row.get("candidates") or []
        if not cands:
            continue
        best = max(range(len(cands)), key=lambda i: cands[i]["f1"])
        rejected = [c for c in cands[:best] if c["f1"] <= cands[best]["f1"] - gap]
        if not rejected and cands[0]["f1"] < miss:
            rejected = [cands[0]]
        truth = row["prompt"].strip()
        for cand in [c for c in rejected if c["prompt"].strip() != truth][:per_row]:
            out.append(Preference(row["response"], truth, cand["prompt"]))
    return out


def read_mined(path: str | Path) -> list[dict]:
    """The mined rows; a line that is not a JSON object with prompt, response and candidates is an error
    naming the line. Split on "\\n" only: responses hold Unicode line separators that splitlines() cuts at."""
    text = Path(path).read_text(encoding="utf-8")
    rows = []
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict) or not {"prompt", "response", "candidates"} <= row.keys():
            raise ValueError(
                f"{path}:{n}: expected a JSON object with prompt, response and candidates "
                "(the output of scripts/mine_preferences.py)"
            )
        rows.append(row)
    return rows


@dataclass
class PreferConfig:
    data: str  # mined JSONL (scripts/mine_preferences.py)
    out_dir: str
    init_adapter: str | None = None  # the adapter to improve; also the reference model
    base_model: str = "base"
    beta: float = 2.0
    sft_weight: float = 1.0
    gap: float = 0.15
    miss: float = 0.3
    per_row: int = 2
    epochs: int = 1
    batch_pairs: int = 8
    lr: float = 3e-5
    warmup_steps: int = 10
    decay_fraction: float = 0.2
    max_response_tokens: int = 128
    max_prompt_tokens: int = 256
    max_minutes: float | None = None
    bf16: bool | None = None
    seed: int = 0
    progress: bool = True


def mean_logps(model, batch: dict) -> torch.Tensor:
    """Mean log-probability of each row's labelled tokens (the prompt and its EOS), the LM head applied only
    there, as in train.prompt_loss. Shape (rows,)."""
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = causal_lm.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    targets = batch["labels"][:, 1:]
    keep = targets != -100
    rows = keep.nonzero()[:, 0]
    logits = causal_lm.lm_head(hidden[:, :-1][keep])
    softcap = getattr(causal_lm.config, "final_logit_softcapping", None)
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    token_lp = torch.log_softmax(logits.float(), dim=-1).gather(1, targets[keep][:, None]).squeeze(1)
    sums = torch.zeros(targets.shape[0], dtype=torch.float32, device=token_lp.device).index_add(0, rows, token_lp)
    return sums / keep.sum(dim=1).clamp(min=1)


def preference_loss(policy_c, policy_r, ref_c, ref_r, beta: float, sft_weight: float):
    """Per-pair loss, its margin and its accuracy (margin > 0): see the module docstring."""
    margin = beta * ((policy_c - ref_c) - (policy_r - ref_r))
    loss = -torch.nn.functional.logsigmoid(margin) - sft_weight * policy_c
    return loss.mean(), margin.detach()


def _examples(tokenizer, prefs: list[Preference], cfg: PreferConfig) -> list[tuple[Example, Example]]:
    out = []
    for p in prefs:
        pair = tokenize_pairs(
            tokenizer,
            [Pair(p.chosen, p.response), Pair(p.rejected, p.response)],
            max_response_tokens=cfg.max_response_tokens,
            max_prompt_tokens=cfg.max_prompt_tokens,
        )
        if len(pair) == 2:
            out.append((pair[0], pair[1]))
    return out


def _batch(group: list[tuple[Example, Example]], pad_id: int) -> dict:
    """Chosen rows first, then rejected: one forward for both."""
    return collate([c for c, _ in group] + [r for _, r in group], pad_id)


def train_preferences(cfg: PreferConfig, model=None, tokenizer=None, prefs: list[Preference] | None = None) -> dict:
    """Run the segment and save OUT/adapter; returns the record (also OUT/training_record.json)."""
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    device = _device()
    base_cfg = TrainConfig(
        data=[cfg.data],
        out_dir=cfg.out_dir,
        base_model=cfg.base_model,
        init_adapter=cfg.init_adapter,
        freeze_layers=0,
        lr=cfg.lr,
        warmup_steps=cfg.warmup_steps,
        decay_fraction=cfg.decay_fraction,
        bf16=cfg.bf16,
    )
    bf16 = _use_bf16(base_cfg, device)
    if prefs is None:
        prefs = preferences_from_mined(read_mined(cfg.data), cfg.gap, cfg.miss, cfg.per_row)
    if not prefs:  # said before the model loads
        raise ValueError("no preference pairs: every mined row was ranked right (try a smaller --gap)")
    model, tokenizer = load_model_and_tokenizer(base_cfg, model, tokenizer, bf16_base=bf16)
    model.to(device)
    pairs = _examples(tokenizer, prefs, cfg)
    if not pairs:
        raise ValueError("no preference pairs fit the model window")
    pad_id = tokenizer.pad_token_id

    # -- the reference: the starting adapter's log-probabilities, once --------------------------------------
    model.eval()
    ref = []
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        for start in range(0, len(pairs), 16):
            group = pairs[start : start + 16]
            lp = mean_logps(model, {k: v.to(device) for k, v in _batch(group, pad_id).items()})
            ref.extend(zip(lp[: len(group)].tolist(), lp[len(group) :].tolist()))

    # -- loop: shuffled pairs, one optimiser step per batch -------------------------------------------------
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    order = []
    for _ in range(cfg.epochs):
        epoch = list(range(len(pairs)))
        rng.shuffle(epoch)
        order += [epoch[i : i + cfg.batch_pairs] for i in range(0, len(epoch), cfg.batch_pairs)]
    total = len(order)
    from tqdm import tqdm

    bar = tqdm(total=total, desc="preference", unit="step", disable=not cfg.progress, dynamic_ncols=True)
    losses, margins, accuracies, seen = [], [], [], 0
    started = time.perf_counter()
    stop_reason = "done"
    for step, idx in enumerate(order):
        if cfg.max_minutes is not None and step > 2:
            per_step = (time.perf_counter() - started) / step
            total = min(total, step + max(1, int((cfg.max_minutes * 60 - (time.perf_counter() - started)) / per_step)))
            bar.total = total
            if step >= total:
                stop_reason = "time limit"
                break
        lr = lr_at(step, total, base_cfg)
        for g in optimizer.param_groups:
            g["lr"] = lr
        group = [pairs[i] for i in idx]
        batch = {k: v.to(device) for k, v in _batch(group, pad_id).items()}
        ref_c = torch.tensor([ref[i][0] for i in idx], device=device)
        ref_r = torch.tensor([ref[i][1] for i in idx], device=device)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            lp = mean_logps(model, batch)
        loss, margin = preference_loss(lp[: len(idx)], lp[len(idx) :], ref_c, ref_r, cfg.beta, cfg.sft_weight)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        seen += len(idx)
        losses.append(round(loss.item(), 4))
        margins.append(round(float(margin.mean()), 4))
        accuracies.append(round(float((margin > 0).float().mean()), 4))
        bar.set_postfix(loss=f"{losses[-1]:.3f}", margin=f"{margins[-1]:.3f}", lr=f"{lr:.1e}")
        bar.update(1)
    bar.close()

    out = Path(cfg.out_dir)
    final = out / "adapter"
    model.save_pretrained(final)
    tokenizer.save_pretrained(final)
    prior = _prior_examples_seen(cfg.init_adapter)
    (final / "revprompt.json").write_text(
        json.dumps(
            {
                "format": "{response}\\n###\\n{prompt}<eos>",
                "max_response_tokens": cfg.max_response_tokens,
                "base_model": cfg.base_model,
                "method": "lora",
                "examples_seen_total": prior + seen,
            },
            indent=2,
        )
    )

    def mean(xs):
        return round(sum(xs) / len(xs), 4) if xs else None

    record = {
        "config": asdict(cfg),
        "kind": "preference",
        "preference_pairs": len(pairs),
        "examples_seen": seen,
        "examples_seen_total": prior + seen,
        "steps": len(losses),
        "stop_reason": stop_reason,
        "lr_first": lr_at(0, total, base_cfg),
        "lr_last": lr_at(len(losses) - 1, total, base_cfg) if losses else None,
        "schedule": f"wsd: warmup {cfg.warmup_steps} steps, peak {cfg.lr}, decay over the last {cfg.decay_fraction:.0%}",
        "losses": losses,
        "margins": margins,
        "mean_loss_first_20": mean(losses[:20]),
        "mean_loss_last_20": mean(losses[-20:]),
        "margin_last_20": mean(margins[-20:]),
        "accuracy_last_20": mean(accuracies[-20:]),
        "seconds": round(time.perf_counter() - started, 1),
        "examples_per_second": round(seen / max(time.perf_counter() - started, 1e-9), 3),
        "lora": {"r": base_cfg.lora_r, "alpha": base_cfg.lora_alpha, "freeze_layers": base_cfg.freeze_layers},
        "device": _describe_device(device),
        "bf16": bf16,
        "torch": torch.__version__,
        "output": str(final),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "training_record.json").write_text(json.dumps(record, indent=2))
    return record
