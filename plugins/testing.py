"""Helpers for testing analyzers without a model: hand-made sweep results and a minimal batch.

from .testing import make_result, run_batch
result = make_result([("what is the capital of france", 3.2), ("capital of france?", 4.0)])
run_id = run_batch(store, [(Document("page-1", "Paris ..."), result)], analyzers=[MyAnalyzer()])
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from ..core.analyzers import finish_run, prepare, save_analysed
from ..core.types import Candidate, DecodeConfig, Document, SweepResult


def make_result(prompts: Iterable[str | tuple[str, float]], n_input_tokens: int = 100) -> SweepResult:
    """A SweepResult whose candidates are `prompts` (optionally with perplexities), ranked by perplexity."""
    cands = []
    for i, item in enumerate(prompts):
        prompt, ppl = (item, 2.0 + i) if isinstance(item, str) else item
        words = prompt.split()
        cands.append(
            Candidate(
                prompt=prompt,
                token_ids=list(range(len(words) + 1)),
                tokens=[*words, "<eos>"],
                token_probs=[1.0 / ppl] * (len(words) + 1),
                perplexity=float(ppl),
                mean_nll=math.log(ppl),
                configs=[DecodeConfig(4, 0.3)],
            )
        )
    cands.sort(key=lambda c: (c.perplexity, c.prompt))
    for rank, cand in enumerate(cands, start=1):
        cand.rank = rank
    return SweepResult(cands, n_input_tokens=n_input_tokens, truncated=False, seconds=0.01)


def run_batch(
    store,
    items: Sequence[tuple[Document, SweepResult | None]],
    analyzers: Sequence | None = None,
    run_id: str | None = None,
    command: str = "test",
) -> str:
    """Save documents with their analyzer rows and run the run-level analyses, through the same functions the
    batch uses (core/analyzers.py). A None result stores a failed document."""
    analyzers = prepare(store, analyzers)
    run_id = run_id or store.create_run(command, "test-model")
    for doc, result in items:
        if result is None:
            if doc.status != "failed":
                doc.failed(doc.error or "failed")
        else:
            doc.status = "done"
        save_analysed(store, run_id, doc, result, analyzers)
    finish_run(store, run_id, analyzers)
    store.finish_run(run_id)
    return run_id
