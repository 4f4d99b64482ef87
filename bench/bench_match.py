"""Keyword–page matching on dev pairs (issue #17): BM25, MiniLM cosine and revprompt's re-ranked match, in one run.

    OMP_NUM_THREADS=2 .venv/bin/python bench/bench_match.py        # 300 pairs, shipped model, shortlists 5 and 10

Pages are the responses of the first N pairs of dev600 with a distinct prompt and response; keyword i's right
page is page i. Two keyword sets over the same pages, each reported in full:

* "dev prompts": the prompts themselves (full chat sentences, many sharing words with their response);
* "SEO keywords": each prompt cut to a short search-style query by `seo_keyword` (deterministic, no model):
  the prompt's words (plugins/text.py `words`: lower-cased, NFKC) minus stop words (plugins/text.py), minus
  instruction and chat words (`INSTRUCTION_WORDS`: write, explain, please, give, tell, ...), minus words of
  one or two letters that are not numbers, repeats dropped; the first `SEO_WORDS` (4) that remain, in order
  ("What are some good browser alternatives to Chrome?" -> "browser alternatives chrome"). A prompt left with
  nothing keeps its first three words. No part of the method was tuned on either set.

For each set and method: top-1 accuracy and MRR (the rank of the right page among all N pages). BM25 is `bm25s` (Lucene variant, English stop words, PyStemmer's English stemmer when
installed). MiniLM is the cosine of all-MiniLM-L6-v2 embeddings of keyword and page (what `revprompt match`
shortlists with). Re-ranked is `revprompt match`: the MiniLM shortlist ordered by the reverse model's mean NLL of
the keyword given the page, then the pages outside the shortlist by cosine.

Wall time: the whole N x N match as `revprompt match` does it (page and keyword embeddings, shortlist, NLL
re-ranking), once per shortlist size, each timed on its own; loading the two models is timed apart. The largest
run's NLLs also give the accuracy of smaller shortlists (a subset of the same scores) and the numbers the
thresholds of plugins/match.py (NO_PAGE_NLL, CANNIBALISATION_MARGIN) are calibrated from, for each set.

The re-ranking's two paths (core/keyword_scoring.py): the batched one `revprompt match` uses (pages in packed
groups) and the previous page-by-page one, timed on the same pairs in the same run (`--compare` keywords of the
dev set, their pages for the smallest shortlist), with the largest difference between their scores.
Usage: python bench/bench_match.py [--pairs 300] [--shortlists 5,10] [--sets dev,seo] [--compare 30]
       [--model shipped|base|DIR] [--dtype auto]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import time
from pathlib import Path

import numpy as np

DEV = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "dev" / "dev600.jsonl"


def load_pairs(path: Path, n: int) -> tuple[list[str], list[str]]:
    prompts, responses, seen_p, seen_r = [], [], set(), set()
    for line in path.open(encoding="utf-8"):
        row = json.loads(line)
        p, r = " ".join(row["prompt"].split()), row["response"].strip()
        if not p or not r or p in seen_p or r in seen_r:
            continue
        seen_p.add(p)
        seen_r.add(r)
        prompts.append(p)
        responses.append(r)
        if len(prompts) == n:
            break
    return prompts, responses


# Instruction and chat words a search query would not carry (besides plugins/text.py's stop words).
INSTRUCTION_WORDS = frozenset(
    """
    write rewrite explain describe tell give show list create generate provide make help need want like know
    please thanks thank hi hello hey dear kindly could would can answer question questions following below above
    using use based example examples short brief detailed simple simply best good great really actually think
    thinking something anything someone way ways thing things one get got going tried trying try summarize
    summarise summary paragraph sentence sentences word words text article essay response
    """.split()
)
SEO_WORDS = 4


def seo_keyword(prompt: str) -> str:
    """A short search-style query from a prompt: its first SEO_WORDS content words (see the module docstring)."""
    from revprompt.plugins.text import is_stopword, words

    kept: list[str] = []
    for w in words(prompt):
        if w in kept or is_stopword(w) or w in INSTRUCTION_WORDS or (len(w) < 3 and not w.isdigit()):
            continue
        kept.append(w)
        if len(kept) == SEO_WORDS:
            break
    return " ".join(kept or words(prompt)[:3]) or prompt[:40]


def ranks_from_scores(scores: np.ndarray) -> np.ndarray:
    """Rank (1 = best) of page i for keyword i, higher score better; ties count against the right page."""
    right = scores[np.arange(len(scores)), np.arange(len(scores))]
    return (scores > right[:, None]).sum(axis=1) + (scores == right[:, None]).sum(axis=1)


def report(name: str, ranks: np.ndarray) -> tuple[float, float]:
    top1, mrr = float(np.mean(ranks == 1)), float(np.mean(1.0 / ranks))
    print(f"{name:<34} top-1 {100 * top1:5.1f}%   MRR {mrr:.3f}")
    return top1, mrr


def bm25_ranks(keywords: list[str], pages: list[str]) -> np.ndarray | None:
    try:
        import bm25s
    except ImportError:
        print("BM25: skipped (pip install bm25s)")
        return None
    try:
        import Stemmer

        stemmer, stem_name = Stemmer.Stemmer("english"), "english (PyStemmer)"
    except ImportError:
        stemmer, stem_name = None, "none"
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(pages, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
    query_tokens = bm25s.tokenize(keywords, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)
    ids, scores = retriever.retrieve(query_tokens, k=len(pages), show_progress=False)
    full = np.zeros((len(keywords), len(pages)), dtype=np.float64)
    np.put_along_axis(full, ids, scores, axis=1)
    print(f"BM25: bm25s {getattr(bm25s, '__version__', '?')}, method lucene, stop words en, stemmer {stem_name}")
    return ranks_from_scores(full)


def reranked_ranks(results, cosines: np.ndarray, shortlist: int | None = None) -> np.ndarray:
    """Rank of the right page: the (first `shortlist` by cosine of the) scored pages by NLL, then the rest by
    cosine."""
    out = np.zeros(len(results), dtype=np.int64)
    for k, r in enumerate(results):
        scored = sorted(r.scored, key=lambda s: s.cosine_rank)[: shortlist or len(r.scored)]
        by_nll = [s.page for s in sorted(scored, key=lambda s: (s.nll, s.cosine_rank))]
        if k in by_nll:
            out[k] = by_nll.index(k) + 1
        else:
            row = cosines[k]
            inside = set(by_nll)
            out[k] = len(by_nll) + sum(
                1 for p in np.argsort(-row, kind="stable") if p not in inside and row[p] >= row[k]
            )
    return out


def equal_error(true_nll: np.ndarray, absent_nll: np.ndarray) -> tuple[float, float, float]:
    """(threshold, share of true pairs above it, share of absent keywords at or below it) where the two meet."""
    best = (math.inf, 0.0, 0.0, 0.0)
    for t in np.unique(np.concatenate([true_nll, absent_nll])):
        frr, far = float(np.mean(true_nll > t)), float(np.mean(absent_nll <= t))
        if abs(frr - far) < best[0]:
            best = (abs(frr - far), float(t), frr, far)
    return best[1], best[2], best[3]


def run_matches(engine, keywords: list[str], pages, sizes: list[int]) -> dict:
    """One complete, separately timed match per shortlist size: embeddings, shortlist, re-ranking."""
    from revprompt.plugins.match import Matcher

    runs = {}
    for size in sizes:
        matcher = Matcher(engine, shortlist=size, no_page_nll=math.inf, margin=0.0)
        start = time.perf_counter()
        results = matcher.match(keywords, pages)
        runs[size] = (results, matcher.last_cosines, matcher.stats, time.perf_counter() - start)
    return runs


def report_set(name: str, keywords: list[str], texts: list[str], runs: dict, sizes: list[int]) -> dict:
    n = len(keywords)
    print(f"\n== {name}: {n} keywords x {n} pages ==")
    out = {}
    try:
        bm25 = bm25_ranks(keywords, texts)
    except Exception as exc:  # noqa: BLE001 - a baseline's failure must not cost the run
        print(f"BM25: failed ({type(exc).__name__}: {exc})")
        bm25 = None
    if bm25 is not None:
        out["bm25"] = report("BM25", bm25)
    results, cosines, st, wall = runs[sizes[-1]]
    minilm_top1, _ = out["minilm"] = report("MiniLM cosine", ranks_from_scores(cosines))
    for size in sizes:
        results, cosines, st, wall = runs[size]
        re_top1, _ = out[f"reranked{size}"] = report(
            f"revprompt re-ranked (shortlist {size})", reranked_ranks(results, cosines)
        )
        recall = float(np.mean([any(s.page == k for s in r.scored) for k, r in enumerate(results)]))
        embed_s = wall - st.prefix_seconds - st.keyword_seconds
        print(
            f"    wall time of the {n} x {n} match: {wall:.1f}s (MiniLM embeddings + shortlist {embed_s:.1f}s, "
            f"page prefixes {st.prefix_seconds:.1f}s for {st.pages} pages / {st.prefix_tokens} tokens, "
            f"keywords {st.keyword_seconds:.1f}s for {st.pairs} pairs / {st.keyword_rows} tokens); "
            f"MiniLM recall@{size} {100 * recall:.1f}%"
        )
        gain = (re_top1 - minilm_top1) * 100
        print(
            f"    goal: {gain:+.1f} points top-1 over MiniLM (>= +5: {'met' if gain >= 5 else 'NOT met'}), "
            f"{wall:.0f}s (<= 120s: {'met' if wall <= 120 else 'NOT met'})"
        )
    results, cosines, st, wall = runs[sizes[-1]]
    for m in (3, 5, 7):  # smaller shortlists from the largest run's scores (accuracy exact, no time)
        if m < sizes[-1] and m not in sizes:
            sub = reranked_ranks(results, cosines, m)
            print(
                f"shortlist {m} (a subset of the shortlist-{sizes[-1]} scores): top-1 {100 * np.mean(sub == 1):5.1f}%   "
                f"MRR {np.mean(1.0 / sub):.3f}"
            )
    return out


def compare_paths(engine, keywords: list[str], pages, n_keywords: int, size: int) -> None:
    """The batched and the page-by-page re-ranking on the same (keyword, page) pairs: time and agreement."""
    from revprompt.core.keyword_scoring import ScoringStats
    from revprompt.plugins.match import Matcher, _unit, page_vectors

    matcher = Matcher(engine, shortlist=size)
    head = keywords[:n_keywords]
    cosines = _unit(matcher.embed(head)) @ page_vectors(pages, matcher.embed).T
    wanted = {k: set(row.tolist()) for k, row in enumerate(matcher.shortlists(cosines))}
    timings, scores = {}, {}
    for label, page_by_page in (("batched (new)", False), ("page by page (old)", True)):
        matcher.stats = ScoringStats()
        start = time.perf_counter()
        scores[label] = matcher.score(head, pages, wanted, page_by_page=page_by_page)
        timings[label] = time.perf_counter() - start
    new, old = scores["batched (new)"], scores["page by page (old)"]
    diff = np.abs(np.array([new[key] - old[key] for key in new]))
    best = {k: min(ps, key=lambda p: new[(k, p)]) for k, ps in wanted.items()}
    same_top1 = np.mean([best[k] == min(ps, key=lambda p: old[(k, p)]) for k, ps in wanted.items()])
    print(
        f"\nre-ranking paths on the same {len(new)} pairs (dev prompts 1-{len(head)}, shortlist {size}): "
        f"batched (new) {timings['batched (new)']:.1f}s, page by page (old) {timings['page by page (old)']:.1f}s, "
        f"old / new = {timings['page by page (old)'] / timings['batched (new)']:.2f}x; "
        f"score difference max {diff.max():.1e}, mean {diff.mean():.1e}; same best page for {100 * same_top1:.0f}% "
        f"of keywords"
    )


def calibrate(name: str, engine, keywords: list[str], texts: list[str], results, re_ranks: np.ndarray) -> None:
    """The numbers plugins/match.py's thresholds (NO_PAGE_NLL, CANNIBALISATION_MARGIN) are set from."""
    from revprompt.core.keyword_scoring import score_keywords
    from revprompt.core.prompt_format import encode_prompt

    n = len(keywords)
    print(f"\ncalibration on the {name} (mean NLL per token):")
    true_nll = np.full(n, np.nan)
    absent_nll = np.full(n, np.nan)
    for k, r in enumerate(results):
        own = r.scored_page(k)
        if own is not None:
            true_nll[k] = own.nll
        others = [s.nll for s in r.scored if s.page != k]
        if others:
            absent_nll[k] = min(others)
    for k in [k for k in range(n) if np.isnan(true_nll[k])]:  # right page outside the shortlist: scored here
        true_nll[k] = score_keywords(
            engine.model, engine.tokenizer, texts[k], [keywords[k]], engine.max_input_tokens, engine.max_new_tokens
        )[0]
    absent_all = absent_nll.copy()
    absent_nll = absent_nll[~np.isnan(absent_nll)]
    q = [10, 25, 50, 75, 90, 95]
    print("  true pairs   p" + " p".join(f"{p}={v:.2f}" for p, v in zip(q, np.percentile(true_nll, q))))
    print("  best absent  p" + " p".join(f"{p}={v:.2f}" for p, v in zip(q, np.percentile(absent_nll, q))))
    threshold, frr, far = equal_error(true_nll, absent_nll)
    print(
        f"  NO_PAGE_NLL (equal error) = {threshold:.2f}: {100 * frr:.1f}% of true pairs above it, "
        f"{100 * far:.1f}% of absent keywords at or below it"
    )
    # Search keywords are short; chat prompts are not. The same threshold on the short keywords alone:
    n_tokens = np.array([len(encode_prompt(engine.tokenizer, kw, engine.max_new_tokens)) for kw in keywords])
    short = (n_tokens <= 12) & ~np.isnan(absent_all)
    if short.sum() >= 20:
        t_short, frr_s, far_s = equal_error(true_nll[short], absent_all[short])
        print(
            f"  short keywords only (<= 11 tokens + EOS, {int(short.sum())} of {n}): equal error at {t_short:.2f} "
            f"({100 * frr_s:.1f}% / {100 * far_s:.1f}%); median true {np.median(true_nll[short]):.2f}, "
            f"median absent {np.median(absent_all[short]):.2f}"
        )
    print(f"  keyword tokens (with EOS): median {np.median(n_tokens):.0f}, mean {np.mean(n_tokens):.1f}")
    margins = np.array([r.margin if r.margin is not None else math.inf for r in results])
    correct = re_ranks == 1
    print("  top-1 accuracy of the re-ranking by margin (runner-up - best):")
    for lo, hi in ((0, 0.05), (0.05, 0.1), (0.1, 0.2), (0.2, 0.4), (0.4, math.inf)):
        sel = (margins >= lo) & (margins < hi)
        if sel.any():
            print(f"    [{lo:.2f}, {hi:.2f}): {int(sel.sum()):3d} keywords, top-1 {100 * correct[sel].mean():5.1f}%")
    cands = [
        m
        for m in (0.02, 0.05, 0.1, 0.15, 0.2, 0.3)
        if ((margins < m).sum() >= 5 and correct[margins < m].mean() <= 0.6)
    ]
    print(f"  CANNIBALISATION_MARGIN: largest margin under which top-1 <= 60%: {max(cands) if cands else 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEV)
    parser.add_argument("--pairs", "--limit", type=int, default=300, help="pairs (pages and keywords per set)")
    parser.add_argument("--shortlists", default="5,10", help="shortlist sizes, each a separately timed match")
    parser.add_argument("--sets", default="dev,seo", help="keyword sets: dev (the prompts), seo (short queries)")
    parser.add_argument("--compare", type=int, default=30, help="dev keywords the two re-ranking paths are timed on")
    parser.add_argument("--model", default=None)
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args()

    import torch

    from revprompt.core.cli_options import load_engine
    from revprompt.core.hardware import describe_cpu
    from revprompt.core.keyword_scoring import score_keywords
    from revprompt.plugins import embeddings
    from revprompt.plugins.match import Page

    prompts, texts = load_pairs(args.data, args.pairs)
    n = len(prompts)
    sets = {"dev prompts": prompts, "SEO keywords": [seo_keyword(p) for p in prompts]}
    wanted_sets = {s.strip() for s in args.sets.split(",") if s.strip()}
    sets = {name: kws for name, kws in sets.items() if name.split()[0].lower() in wanted_sets}
    print(
        f"data: {args.data.name}, {n} pairs (responses as pages; prompts, and short queries made from them, as keywords)"
    )
    if "SEO keywords" in sets:
        examples = "; ".join(f"{p[:50]!r} -> {k!r}" for p, k in list(zip(prompts, sets["SEO keywords"]))[:3])
        lengths = [len(k.split()) for k in sets["SEO keywords"]]
        print(f"SEO keywords: mean {np.mean(lengths):.1f} words, e.g. {examples}")

    start = time.perf_counter()
    engine = load_engine(args.model, dtype=args.dtype, device=args.device)
    load_model = time.perf_counter() - start
    start = time.perf_counter()
    embeddings.embed(["warm up"])
    load_minilm = time.perf_counter() - start
    print(
        f"model={engine.model_name} dtype={engine.dtype} device={engine.device} window={engine.max_input_tokens} "
        f"threads={torch.get_num_threads()} cpu: {describe_cpu()}"
    )
    print(f"load: reverse model {load_model:.1f}s, MiniLM {load_minilm:.1f}s (not in the match time)")

    score_keywords(
        engine.model, engine.tokenizer, texts[0], prompts[:3], engine.max_input_tokens, engine.max_new_tokens
    )  # warm-up: first-call allocations are not what a match pays
    pages = [Page(uri=f"dev:{i}", text=t) for i, t in enumerate(texts)]
    sizes = sorted({int(x) for x in args.shortlists.split(",") if x.strip()})
    all_runs = {}
    for name, keywords in sets.items():
        all_runs[name] = run_matches(engine, keywords, pages, sizes)
        report_set(name, keywords, texts, all_runs[name], sizes)
    if args.compare > 0:
        compare_paths(engine, prompts, pages, min(args.compare, n), min(sizes))
    for name, keywords in sets.items():
        results, cosines, _, _ = all_runs[name][sizes[-1]]
        calibrate(name, engine, keywords, texts, results, reranked_ranks(results, cosines))
    print(f"\npeak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
