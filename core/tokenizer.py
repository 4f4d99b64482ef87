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
    def from_file(cls, tokenizer_json: Path, special: Mapping[str, str], name_or_path: str = "") -> JsonTokenizer:
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(str(tokenizer_json)), special, name_or_path)

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
