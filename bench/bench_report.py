"""Size and render time of `revprompt report`: render a run, then open it in headless Chromium (network blocked).

Prints the number of pages, the seconds to collect and render the HTML, the file size, and two Chromium times:
`rendered` (performance.now() when the report's script finished its first render: parse + JSON + first page)
and `load` (driver.get until then, as the driver sees it). Issue 18's goal: a 100-document run of the real model
gives a file <= 5 MB that renders in <= 2 s.

Usage:
  python bench/bench_report.py --db revprompt.duckdb [--run RUN_ID] [-o /tmp/report.html]
  python bench/bench_report.py --synthetic 5000 [-o /tmp/report.html]   # no model: a made-up run of N pages
The synthetic run has 16 candidates a page with 14 tokens each (about what the real model's sweep keeps), the
key phrase and word frequency analyzers, and the intent map from a hashed bag-of-words embedding.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import tempfile
import time
from pathlib import Path

import numpy as np


def _bag_of_words(texts):
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def synthetic_db(path: str, n_docs: int, n_cands: int = 16, seed: int = 0) -> str:
    from revprompt.core.store import Store
    from revprompt.core.types import Document
    from revprompt.plugins.key_phrases import KeyPhrasesAnalyzer
    from revprompt.plugins.site_intent import SiteIntentAnalyzer
    from revprompt.plugins.testing import make_result, run_batch
    from revprompt.plugins.word_frequency import WordFrequencyAnalyzer

    rng = random.Random(seed)
    vocab = (
        "fix leaking kitchen tap best running shoes flat feet repot orchid bark cheap flights rome may "
        "booking midweek washer handle support arch stability spring drainage price review guide compare "
        "install replace cost near me how long"
    ).split()
    starts = ["how do i", "what is the best way to", "why does", "can i", "where to find", "when should i"]
    items = []
    for i in range(n_docs):
        topic = rng.sample(vocab, 4)
        prompts = [
            (
                f"{rng.choice(starts)} {' '.join(rng.sample(topic, 3))} {' '.join(rng.sample(vocab, 6))}",
                2.0 + j * 0.4 + rng.random(),
            )
            for j in range(n_cands)
        ]
        items.append(
            (
                Document(f"https://example.com/{'-'.join(topic)}-{i}", " ".join(topic), title=" ".join(topic).title()),
                make_result(prompts),
            )
        )
    analyzers = [KeyPhrasesAnalyzer(), WordFrequencyAnalyzer(), SiteIntentAnalyzer(embed=_bag_of_words)]
    with Store(path) as store:
        run_batch(store, items, analyzers, command=f"synthetic run of {n_docs} pages")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", help="results database (default with --synthetic: a temporary one)")
    ap.add_argument("--run", dest="run_id", help="run id (default: the latest)")
    ap.add_argument("--synthetic", type=int, metavar="N", help="build a made-up run of N pages first")
    ap.add_argument("-o", "--output", default=None, help="HTML file (default: a temporary file)")
    ap.add_argument("--no-browser", action="store_true", help="only render; skip Chromium")
    args = ap.parse_args()

    from revprompt.core.store import open_sandbox
    from revprompt.plugins.report import collect, render

    tmp = Path(tempfile.mkdtemp(prefix="bench-report-"))
    db = args.db
    if args.synthetic:
        db = db or str(tmp / "synthetic.duckdb")
        t0 = time.perf_counter()
        synthetic_db(db, args.synthetic)
        print(f"built a synthetic run of {args.synthetic} pages in {time.perf_counter() - t0:.1f} s")
    if not db:
        ap.error("give --db or --synthetic N")
    output = Path(args.output or tmp / "report.html")

    t0 = time.perf_counter()
    with open_sandbox(db) as store:
        data = collect(store, args.run_id)
    t1 = time.perf_counter()
    text = render(data)
    output.write_text(text, encoding="utf-8")
    t2 = time.perf_counter()
    size = output.stat().st_size
    n = len(data["docs"])
    print(f"run {data['run']['run_id']}: {n} pages, {data['run']['n_candidates']} candidates")
    print(
        f"collect {t1 - t0:.2f} s, render {t2 - t1:.2f} s, file {size / 1e6:.2f} MB "
        f"({size / max(n, 1) / 1e3:.1f} kB a page): {output}"
    )
    if args.no_browser:
        return
    from revprompt.plugins.browser import find_chromium, visit

    _, _, reason = find_chromium()
    if reason:
        print(f"Chromium: skipped ({reason})")
        return
    seen = visit(output)
    seen2 = visit(output)  # a second, warm visit: the first also pays for Chromium's own start
    print(
        f"Chromium: rendered at {seen.rendered_ms:.0f} ms / {seen2.rendered_ms:.0f} ms (cold / warm), "
        f"load {seen.load_seconds:.2f} s / {seen2.load_seconds:.2f} s; console errors {len(seen.errors)}, "
        f"external requests {len(seen.external_requests)}"
    )


if __name__ == "__main__":
    main()
