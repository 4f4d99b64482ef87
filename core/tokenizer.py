"""The tokenizer the engine runs on: the Rust `tokenizers` object of a model's tokenizer.json, without transformers.

Why not transformers' PreTrainedTokenizerFast: importing transformers costs about 0.6 s of a one-sentence
`revprompt analyze` (issue #14), and the engine needs only a sliver of that class. For a tokenizer.json, what
PreTrainedTokenizerFast does with the calls below is exactly the Rust object's work (transformers 5's `_decode`
is `tokenizers.Tokenizer.decode`, with no clean-up of spaces for a BPE model like Gemma's), so the ids and texts
are the same (tests/test_inference_runtime.py compares both on tricky text).

The interface is the part of transformers' one that revprompt's engine, prompt format and decoders use:
`tokenizer(text, add_special_tokens=...)["input_ids"]`, `decode(ids, skip_special_tokens=...)`,
`convert_tokens_to_ids(token)`, and the special tokens with their ids (`eos_token_id`, ...). Training and every
slower path (a directory without tokenizer.json) keep transformers' tokenizers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

SPECIAL = ("bos_token", "eos_token", "unk_token", "pad_token", "mask_token")


class JsonTokenizer:
    """A tokenizer.json read by the Rust `tokenizers` library, with the special tokens a model directory names."""

    def __init__(self, backend: Any, special: Mapping[str, str], name_or_path: str = ""):
        self.backend_tokenizer = backend
        self.name_or_path = name_or_path
        self.special_tokens: dict[str, str] = {}
        for key in SPECIAL:
            token = special.get(key)
            if token is not None and backend.token_to_id(token) is None:
                raise ValueError(f"{key} {token!r} is not in the vocabulary")
            if token is not None:
                self.special_tokens[key] = token

    @classmethod
    def from_file(
        cls, tokenizer_json: Path, special: Mapping[str, str], name_or_path: str = "", cache: Path | None = None
    ) -> JsonTokenizer:
        """The tokenizer of a tokenizer.json; with a `cache` directory, read through its split copy there
        (`load_backend`)."""
        return cls(load_backend(Path(tokenizer_json), cache), special, name_or_path)

    # The special tokens and their ids, as transformers names them (None where the directory names none).
    def _token(self, key: str) -> str | None:
        return self.special_tokens.get(key)

    def _id(self, key: str) -> int | None:
        token = self.special_tokens.get(key)
        return None if token is None else self.backend_tokenizer.token_to_id(token)

    bos_token = property(lambda self: self._token("bos_token"))
    eos_token = property(lambda self: self._token("eos_token"))
    unk_token = property(lambda self: self._token("unk_token"))
    pad_token = property(lambda self: self._token("pad_token"))
    mask_token = property(lambda self: self._token("mask_token"))
    bos_token_id = property(lambda self: self._id("bos_token"))
    eos_token_id = property(lambda self: self._id("eos_token"))
    unk_token_id = property(lambda self: self._id("unk_token"))
    pad_token_id = property(lambda self: self._id("pad_token"))
    mask_token_id = property(lambda self: self._id("mask_token"))

    def __len__(self) -> int:
        return self.backend_tokenizer.get_vocab_size(with_added_tokens=True)

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": self.encode(text, add_special_tokens=add_special_tokens)}

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self.backend_tokenizer.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: Iterable[int] | int, skip_special_tokens: bool = False) -> str:
        ids = [ids] if isinstance(ids, int) else [int(i) for i in ids]
        return self.backend_tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    def convert_tokens_to_ids(self, token: str) -> int | None:
        """The token's id; the unknown token's id for a token outside the vocabulary, as transformers does."""
        found = self.backend_tokenizer.token_to_id(token)
        return found if found is not None else self.unk_token_id


# -- a faster read of a large BPE tokenizer.json -----------------------------------------------------------------
# Gemma 3's tokenizer.json is 33 MB: 262,144 tokens and 514,906 merges, about 1 s for `Tokenizer.from_file` to
# parse and build, a quarter of a one-sentence `analyze`. Most of that is JSON: the same vocabulary and merges
# read from a `marshal` file and handed to `models.BPE` take about 0.7 s. So the first load writes, into a cache
# directory, a "shell" tokenizer.json (everything but the BPE model, whose vocabulary keeps only the added
# tokens, so they keep their ids) and the vocabulary and merges as marshal data; later loads read the shell and
# set the model built from the marshal data. The split copy is kept only if the tokenizer it rebuilds serialises
# to exactly the original's JSON, and is keyed by the file's size and mtime, Python's marshal version and the
# tokenizers release; anything else (another model type, a read-only cache, a damaged copy) reads the file whole.
SHELL, PARTS = "shell.json", "bpe.marshal"
_BPE_OPTIONS = ("dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", "byte_fallback")


def _split_dir(tokenizer_json: Path, cache: Path) -> Path:
    import hashlib
    import marshal
    import sys

    import tokenizers

    stat = tokenizer_json.stat()
    key = (
        f"{tokenizer_json.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:py{sys.version_info[:2]}:"
        f"marshal{marshal.version}:tokenizers{tokenizers.__version__}"
    )
    return cache / hashlib.sha256(key.encode()).hexdigest()[:16]


def _rebuild(split: Path) -> Any:
    import marshal

    from tokenizers import Tokenizer, models

    backend = Tokenizer.from_file(str(split / SHELL))
    options, vocab, merges = marshal.loads((split / PARTS).read_bytes())
    backend.model = models.BPE(vocab, merges, **options)
    return backend


def _write_split(tokenizer_json: Path, backend: Any, split: Path) -> None:
    """Write the split copy of a BPE tokenizer.json into `split`, if it rebuilds the same tokenizer."""
    import json
    import marshal
    import os
    import shutil

    raw = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    model = raw.get("model") or {}
    if model.get("type") != "BPE" or not isinstance(model.get("vocab"), dict):
        return
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model.get("merges", [])]
    options = {k: model[k] for k in _BPE_OPTIONS if model.get(k) is not None}
    if model.get("ignore_merges"):
        options["ignore_merges"] = True
    added = {t["content"]: t["id"] for t in raw.get("added_tokens", [])}
    shell = {**raw, "model": {**model, "vocab": added, "merges": []}}
    tmp = split.with_name(split.name + f".tmp{os.getpid()}")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / SHELL).write_text(json.dumps(shell, ensure_ascii=False), encoding="utf-8")
        (tmp / PARTS).write_bytes(marshal.dumps((options, model["vocab"], merges)))
        if json.loads(_rebuild(tmp).to_str()) != json.loads(backend.to_str()):
            return  # not the same tokenizer: keep reading the file whole
        os.replace(tmp, split)
    except OSError:  # a read-only or full cache only costs speed
        pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_backend(tokenizer_json: Path, cache: Path | None = None) -> Any:
    """The `tokenizers.Tokenizer` of a tokenizer.json: from its split copy in `cache` when there is a good one
    (written on the first load), else read whole."""
    from tokenizers import Tokenizer

    if cache is None:
        return Tokenizer.from_file(str(tokenizer_json))
    split = _split_dir(tokenizer_json, cache)
    if (split / SHELL).exists() and (split / PARTS).exists():
        try:
            return _rebuild(split)
        except Exception:  # noqa: BLE001 -- a damaged copy: read the file whole and write it again
            import shutil

            shutil.rmtree(split, ignore_errors=True)
    backend = Tokenizer.from_file(str(tokenizer_json))
    _write_split(tokenizer_json, backend, split)
    return backend
