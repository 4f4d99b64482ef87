"""docs/s of `analyze` run locally and on a local Ray (1 actor, 2 actors), same texts, same model, one process.

    python bench/bench_ray.py [--docs 20] [--model shipped|base|DIR] [--dtype auto] [--batch-docs 4]

The texts are the first --docs responses of ../shared/data/dev/dev100.jsonl (or generated ones where that file
is missing), written to a folder and analysed as `revprompt analyze FOLDER --no-plugins` would be: local is the
plain BatchRunner with the model in this process (torch uses every core); Ray starts a local cluster on
127.0.0.1 with every core and no dashboard, then runs RayBatchRunner with one actor holding every core and
with one actor per core. Each configuration gets a fresh database.

Two numbers per configuration: docs/s of the batch once the model is loaded (the engine, or every actor, is
ready before the clock starts), which is what scaling is about, and the end-to-end seconds including the model
loads. Ratios are Ray / local (1.00: no overhead; > 1: faster). On a 2-core machine the point is the overhead
(issue 16 asks for Ray within 15% of local); the scaling per added node is in docs/scale-out.md. A busy machine
makes every number noisy: say so when reporting.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

DEV = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "dev" / "dev100.jsonl"


def texts(n: int) -> list[str]:
    out = []
    if DEV.exists():
        for line in DEV.open():
            out.append(json.loads(line)["response"])
            if len(out) == n:
                return out
    topics = ["sleep", "bread", "running", "taxes", "coffee", "chess", "travel", "plants", "speaking", "cycling"]
    while len(out) < n:
        i = len(out)
        out.append(
            f"Here are practical tips about {topics[i % len(topics)]} (set {i}): start small, keep a log of "
            "what works, ask someone experienced, and review your progress every week. " * 4
        )
    return out


def run_local(folder: Path, db: Path, engine_kwargs: dict, description: dict) -> tuple[float, float, int]:
    from revprompt.core.batch import BatchRunner
    from revprompt.core.engine import Engine
    from revprompt.core.store import Store

    start = time.perf_counter()
    engine = Engine.load(**engine_kwargs)
    loaded = time.perf_counter()
    with Store(str(db)) as store:
        summary = BatchRunner(store, lambda: engine, description, analyzers=[]).run("bench", [str(folder)])
    end = time.perf_counter()
    return end - loaded, end - start, summary.done


def run_ray(
    folder: Path, db: Path, engine_kwargs: dict, description: dict, actors: int, cpus: float
) -> tuple[float, float, int]:
    from revprompt.core.ray_runner import RayBatchRunner, RaySettings
    from revprompt.core.store import Store

    start = time.perf_counter()
    with Store(str(db)) as store:
        runner = RayBatchRunner(
            store, engine_kwargs, description, analyzers=[], settings=RaySettings(actors=actors, cpus_per_actor=cpus)
        )
        runner.start_workers()
        while not all(w.ready for w in runner.workers):  # every actor has its model: time the batch alone
            runner._pump(timeout=1.0)
        loaded = time.perf_counter()
        summary = runner.run("bench", [str(folder)])
    end = time.perf_counter()
    return end - loaded, end - start, summary.done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=20)
    parser.add_argument("--model", default=None)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--batch-docs", type=int, default=4)
    args = parser.parse_args()

    import ray

    from revprompt.core.analyze_command import engine_description
    from revprompt.core.engine import InputTruncatedWarning

    warnings.simplefilter("ignore", InputTruncatedWarning)  # texts longer than the window are cut, by design

    cores = os.cpu_count() or 1
    engine_kwargs = dict(model=args.model, dtype=args.dtype, device="cpu", batch_docs=args.batch_docs)
    description = engine_description(args.model, args.dtype)
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        folder = Path(tmp) / "texts"
        folder.mkdir()
        for i, text in enumerate(texts(args.docs)):
            (folder / f"{i:03d}.txt").write_text(text)
        print(
            f"bench_ray: {args.docs} texts, model {args.model or 'shipped'}, dtype {args.dtype}, "
            f"batch_docs {args.batch_docs}, {cores} cores, ray {ray.__version__}",
            flush=True,
        )

        rows = []
        batch, total, done = run_local(folder, Path(tmp) / "local.duckdb", engine_kwargs, description)
        rows.append(("local (1 process, all cores)", batch, total, done))
        print(
            f"{rows[-1][0]:<34} {done / batch:6.3f} docs/s   batch {batch:7.1f} s   end-to-end {total:7.1f} s",
            flush=True,
        )
        ray.init(
            address="local",
            num_cpus=cores,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
        try:
            for actors, cpus in ((1, float(cores)), (cores, 1.0)):
                batch, total, done = run_ray(
                    folder, Path(tmp) / f"ray{actors}.duckdb", engine_kwargs, description, actors, cpus
                )
                name = f"ray, {actors} actor{'s' if actors > 1 else ''} x {cpus:g} CPU"
                rows.append((name, batch, total, done))
                print(
                    f"{name:<34} {done / batch:6.3f} docs/s   batch {batch:7.1f} s   end-to-end {total:7.1f} s   "
                    f"ratio vs local {(done / batch) / (rows[0][3] / rows[0][1]):5.2f}x "
                    f"(end-to-end {rows[0][2] / total:5.2f}x)",
                    flush=True,
                )
        finally:
            ray.shutdown()
    if any(r[3] != args.docs for r in rows):
        print("warning: not every configuration analysed every text: " + ", ".join(f"{r[0]}: {r[3]}" for r in rows))
        sys.exit(1)


if __name__ == "__main__":
    main()
