"""Rank the pooled candidates of pool_score.py by several rules; print top-1 cosine / F1 per rule.

The study of docs/model.md §26, after

    python scripts/pool_score.py runs/s29/pool.jsonl --top 6 --details blend=runs/s21-dev600-shipped.jsonl \
        --details c3=runs/c3-dev600.jsonl --details c1=runs/c1-dev600.jsonl \
        --model blend=model/adapter --model c3=runs/c3-seg/adapter
    python scripts/pool_rank.py

(the pools are rebuilt here the same way from DETAILS; the per-model NLLs are read from OUT.<model>.json).
"""

from __future__ import annotations

import json
import os
import statistics as st

from revprompt.core.junk import page_junk  # noqa: E402

TOP = 6
DETAILS = {"blend": "runs/s21-dev600-shipped.jsonl", "c3": "runs/c3-dev600.jsonl", "c1": "runs/c1-dev600.jsonl"}
OUT = "runs/s29/pool.jsonl"
dev = [json.loads(line) for line in open("../shared/data/dev/dev600.jsonl")]
pools: list[dict] = [dict() for _ in dev]
for name, path in DETAILS.items():
    for row in map(json.loads, open(path)):
        pool = pools[row["index"]]
        for c in row["candidates"][:TOP]:
            e = pool.setdefault(
                c["prompt"], {"prompt": c["prompt"], "cosine": c["cosine"], "f1": c["token_f1"], "from": {}}
            )
            e["from"][name] = c["rank"]
nll = {}
for m in ["blend", "c3", "seg4", "c1"]:
    p = f"{OUT}.{m}.json"
    if os.path.exists(p):
        nll[m] = json.load(open(p))
for i, pool in enumerate(pools):
    for j, c in enumerate(pool.values()):
        c["nll"] = {m: nll[m][i][j] for m in nll}
        c["junk"] = bool(page_junk(c["prompt"], dev[i]["response"], "response"))
print("models scored:", list(nll))


def report(label, key, members=None):
    cos, f1 = [], []
    for pool in pools:
        cands = [c for c in pool.values() if members is None or set(c["from"]) & set(members)]
        best = min(cands, key=lambda c: (c["junk"], key(c), c["prompt"]))
        cos.append(best["cosine"])
        f1.append(best["f1"])
    half = len(cos) // 2
    print(
        f"{label:55s} {st.mean(cos):.4f} / {st.mean(f1):.4f}   AE {st.mean(cos[:half]):.3f}/{st.mean(f1[:half]):.3f}"
        f"  SG {st.mean(cos[half:]):.3f}/{st.mean(f1[half:]):.3f}"
    )
    return cos, f1


ms = list(nll)
for m in ms:
    report(f"blend's candidates by {m}", lambda c, m=m: c["nll"][m], ["blend"])
    report(f"blend+c3 candidates by {m}", lambda c, m=m: c["nll"][m], ["blend", "c3"])
    report(f"all pooled by {m}", lambda c, m=m: c["nll"][m])
for k in range(2, len(ms) + 1):
    sub = ms[:k]
    for members in (["blend"], ["blend", "c3"], None):
        report(
            f"{members or 'all'} by mean NLL of {sub}",
            lambda c, sub=sub: sum(c["nll"][m] for m in sub) / len(sub),
            members,
        )

# own perplexity: each candidate scored by the model(s) that wrote it, as in their details files
own: list[dict] = [dict() for _ in dev]
for name, path in DETAILS.items():
    for row in map(json.loads, open(path)):
        for c in row["candidates"][:TOP]:
            own[row["index"]].setdefault(c["prompt"], {})[name] = c["perplexity"]

for i, pool in enumerate(pools):
    for c in pool.values():
        c["own"] = own[i][c["prompt"]]
report("blend+c3 by own ppl (min)", lambda c: min(v for k, v in c["own"].items() if k != "c1"), ["blend", "c3"])
report("all by own ppl (min)", lambda c: min(c["own"].values()))
report("all by own ppl (mean)", lambda c: st.mean(c["own"].values()))
report("all by own ppl, c1 x1.1", lambda c: min(v * (1.1 if k == "c1" else 1) for k, v in c["own"].items()))
