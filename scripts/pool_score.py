"""Study: pool the dev600 candidates of several adapters' eval details and score every one under each adapter.

    python scripts/pool_score.py OUT.jsonl --details NAME=FILE ... --model NAME=PATH ...

One output row per document: the pooled candidates (prompt, cosine, token_f1, which details files had it) and,
per model, each candidate's mean NLL teacher-forced (Engine.score, the engine's own window for that model).
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--details", action="append", default=[])
    ap.add_argument("--model", action="append", default=[])
    ap.add_argument("--dev", default="../shared/data/dev/dev600.jsonl")
    ap.add_argument("--top", type=int, default=6, help="candidates taken from each details row")
    args = ap.parse_args()
    from revprompt.core.engine import Engine

    dev = [json.loads(line) for line in open(args.dev)]
    pools: list[dict] = [dict() for _ in dev]
    for spec in args.details:
        name, path = spec.split("=", 1)
        for row in map(json.loads, open(path)):
            pool = pools[row["index"]]
            for c in row["candidates"][: args.top]:
                entry = pool.setdefault(
                    c["prompt"], {"prompt": c["prompt"], "cosine": c["cosine"], "token_f1": c["token_f1"], "from": {}}
                )
                entry["from"][name] = c["rank"]
    nll: dict[str, list[list[float]]] = {}
    for spec in args.model:
        name, path = spec.split("=", 1)
        t0 = time.time()
        nll[name] = []
        try:
            nll[name] = json.load(open(f"{args.out}.{name}.json"))
            continue
        except FileNotFoundError:
            pass
        engine = Engine.load(path)
        for i, (row, pool) in enumerate(zip(dev, pools)):
            prompts = list(pool)
            scores = engine.score(row["response"], prompts)
            nll[name].append([s.mean_nll for s in scores])
            if i % 100 == 0:
                print(name, i, f"{time.time() - t0:.0f}s", file=sys.stderr, flush=True)
        with open(f"{args.out}.{name}.json", "w") as f:
            json.dump(nll[name], f)
        del engine
    with open(args.out, "w") as f:
        for i, (row, pool) in enumerate(zip(dev, pools)):
            cands = list(pool.values())
            for j, c in enumerate(cands):
                c["nll"] = {name: nll[name][i][j] for name in nll}
            f.write(
                json.dumps(
                    {
                        "index": i,
                        "prompt": row["prompt"],
                        "response": row["response"],
                        "source": row["source"],
                        "candidates": cands,
                    }
                )
                + "\n"
            )


if __name__ == "__main__":
    main()
