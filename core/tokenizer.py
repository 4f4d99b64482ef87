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
        """The tokenizer of a tokenizer.json; with a `cache` directory, through its SentencePiece twin there when
        the layout allows one (`load_backend`)."""
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


# -- a faster read of a large BPE tokenizer.json: its SentencePiece twin -----------------------------------------
# Gemma 3's tokenizer.json is 33 MB: 262,144 tokens and 514,906 merges. `tokenizers.Tokenizer.from_file` takes 1.1
# to 1.5 s to parse and build it on a 2-core AVX2 CPU, a fifth of a one-sentence `analyze` (issue #14); a copy
# split into JSON and marshal data was no faster there. The same tokenizer written as a SentencePiece BPE model
# (the format Gemma's tokenizer came from: pieces with scores, byte fallback, whitespace as "▁") loads in about
# 0.15 s and encodes long pages about twice as fast. So the first load of a tokenizer.json of that layout writes
# the SentencePiece model into the cache, and keeps it only if it gives the Rust tokenizer's ids and texts on a
# probe set (every token decoded alone, whitespace runs, code, scripts, emoji, broken byte runs, special tokens
# written in the text); later loads read it and never import `tokenizers`. Any other layout, a probe that
# differs, or a read-only cache reads the file whole, as before.
#
# How the twin is made equal: a piece's score is minus the rank of the first merge that forms it, so
# SentencePiece's "merge the best-scored adjacent pair" follows the merge list; a piece no merge forms is marked
# unused (SentencePiece never merges into it); added tokens (special or not) are user-defined pieces, matched
# in the text before BPE as `tokenizers` matches them, except the unknown token, which SentencePiece reserves and
# is split out here. Decoding is done here from the pieces, with the tokenizer.json's own decoder steps
# (▁ to space, byte fallback with one U+FFFD per byte of an invalid run, fuse), because SentencePiece keeps the
# valid bytes of a broken run where `tokenizers` does not.
SPM_MODEL, SPM_META = "tokenizer.spm", "meta.json"
_NORMALIZER = {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}
_NO_OP_PRE = ({"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": False}, None)
_DECODER = {
    "type": "Sequence",
    "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
        {"type": "ByteFallback"},
        {"type": "Fuse"},
    ],
}


def _byte_piece(piece: str) -> int | None:
    """The byte a byte-fallback piece ("<0x0A>") stands for, else None."""
    if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
        try:
            return int(piece[3:5], 16)
        except ValueError:
            return None
    return None


def spm_twin(raw: dict) -> tuple[bytes, dict] | None:
    """The SentencePiece model (serialised) and the metadata revprompt keeps beside it for a tokenizer.json of
    Gemma's layout, or None for any other layout (then the file is read whole)."""
    from sentencepiece import sentencepiece_model_pb2

    pb: Any = sentencepiece_model_pb2  # generated protobuf code: no stubs for mypy
    model = raw.get("model") or {}
    vocab = model.get("vocab")
    if (
        model.get("type") != "BPE"
        or not isinstance(vocab, dict)
        or not model.get("byte_fallback")
        or model.get("dropout") is not None
        or model.get("continuing_subword_prefix")
        or model.get("end_of_word_suffix")
        or model.get("ignore_merges")
        or model.get("unk_token") not in vocab
        or raw.get("normalizer") != _NORMALIZER
        or raw.get("pre_tokenizer") not in _NO_OP_PRE
        or raw.get("decoder") != _DECODER
        or raw.get("truncation") is not None
        or raw.get("padding") is not None
    ):
        return None
    pieces = [""] * len(vocab)
    for token, i in vocab.items():
        if not (0 <= i < len(pieces)) or pieces[i]:
            return None  # ids with gaps or repeats
        pieces[i] = token
    if sorted(b for p in pieces if (b := _byte_piece(p)) is not None) != list(range(256)):
        return None
    added: dict[int, dict] = {}
    for token in raw.get("added_tokens", []):
        content = token.get("content", "")
        if (
            vocab.get(content) != token.get("id")
            or token.get("lstrip")
            or token.get("rstrip")
            or token.get("single_word")
            or not content
            or " " in content
            or "\u2581" in content
        ):
            return None
        added[token["id"]] = token
    bos = None
    post = raw.get("post_processor")
    if post is not None:
        single = post.get("single") if post.get("type") == "TemplateProcessing" else None
        if not single or len(single) != 2 or "SpecialToken" not in single[0] or "Sequence" not in single[1]:
            return None
        bos = vocab.get(single[0]["SpecialToken"]["id"])
        if bos is None:
            return None
    rank: dict[str, int] = {}
    for r, merge in enumerate(model.get("merges", [])):
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        rank.setdefault(left + right, r)
    unk = vocab[model["unk_token"]]

    proto = pb.ModelProto()
    spec = proto.trainer_spec
    spec.model_type = pb.TrainerSpec.BPE
    spec.vocab_size = len(pieces)
    spec.byte_fallback = True
    spec.split_by_whitespace = False
    spec.allow_whitespace_only_pieces = True
    spec.unk_id, spec.bos_id, spec.eos_id, spec.pad_id = unk, -1, -1, -1
    norm = proto.normalizer_spec
    norm.name = "identity"
    norm.add_dummy_prefix = False
    norm.remove_extra_whitespaces = False
    norm.escape_whitespaces = True
    kind = pb.ModelProto.SentencePiece
    for i, token in enumerate(pieces):
        piece = proto.pieces.add()
        piece.piece, piece.score = token, 0.0
        if i == unk:
            piece.type = kind.UNKNOWN
        elif i in added:
            piece.type = kind.USER_DEFINED
        elif _byte_piece(token) is not None:
            piece.type = kind.BYTE
        elif token in rank:
            piece.type, piece.score = kind.NORMAL, -float(rank[token])
        elif len(token) == 1:
            piece.type, piece.score = kind.NORMAL, -float(len(rank) + 1)  # a character: a start, never a merge
        else:
            piece.type = kind.UNUSED  # no merge forms it: SentencePiece must not either
    meta = {
        "bos_id": bos,
        "unk_id": unk,
        "unk_token": model["unk_token"],
        "special_ids": sorted(i for i, t in added.items() if t.get("special")),
        "vocab_size": len(pieces),
    }
    return proto.SerializeToString(), meta


class _Encoding:
    __slots__ = ("ids",)

    def __init__(self, ids: list[int]):
        self.ids = ids


class SpmBackend:
    """The part of `tokenizers.Tokenizer` that `JsonTokenizer` uses, on a tokenizer.json's SentencePiece twin."""

    def __init__(self, model: bytes, meta: Mapping[str, Any]):
        import sentencepiece

        self._sp = sentencepiece.SentencePieceProcessor(model_proto=model)
        self._bos: int | None = meta["bos_id"]
        self._unk: int = meta["unk_id"]
        self._unk_token: str = meta["unk_token"]
        self._special = frozenset(meta["special_ids"])
        self._size: int = meta["vocab_size"]
        if self._sp.get_piece_size() != self._size:
            raise ValueError("the SentencePiece twin has another vocabulary size")

    @classmethod
    def load(cls, directory: Path) -> SpmBackend:
        import json

        return cls((directory / SPM_MODEL).read_bytes(), json.loads((directory / SPM_META).read_text("utf-8")))

    def encode(self, text: str, add_special_tokens: bool = True) -> _Encoding:
        ids: list[int] = [self._bos] if add_special_tokens and self._bos is not None else []
        for k, part in enumerate(text.split(self._unk_token)):  # SentencePiece reserves the unknown token
            if k:
                ids.append(self._unk)
            if part:
                ids.extend(self._sp.encode(part))
        return _Encoding(ids)

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        out: list[str] = []
        run = bytearray()
        run_len = 0

        def flush() -> None:
            nonlocal run_len
            if run_len:
                try:
                    out.append(run.decode("utf-8"))
                except UnicodeDecodeError:
                    out.append("\ufffd" * run_len)
                run.clear()
                run_len = 0

        for i in ids:
            if skip_special_tokens and i in self._special:
                continue
            piece = self._sp.id_to_piece(i)
            byte = _byte_piece(piece)
            if byte is not None:
                run.append(byte)
                run_len += 1
                continue
            flush()
            out.append(piece.replace("\u2581", " "))
        flush()
        return "".join(out)

    def token_to_id(self, token: str) -> int | None:
        i = self._sp.piece_to_id(token)
        return i if self._sp.id_to_piece(i) == token else None

    def get_vocab_size(self, with_added_tokens: bool = True) -> int:
        return self._size


def _probe_texts() -> list[str]:
    """Texts on which the twin must give the Rust tokenizer's ids: the cases where tokenizers differ."""
    import random

    fixed = [
        "Paris is the capital of France.\n###\nWhat is the capital of France?",
        "  two  spaces,\ttabs\tand\r\nline ends  ",
        "def f(x):\n    return {'a': [1, 2]}  # código, 日本語, emoji 🧑\u200d🍳, math ∑ x² ≤ 3",
        "<bos>Already <pad> special <mask> tokens <start_of_turn>user\nhi<end_of_turn> <eos><unk> x<unk>",
        "\u200b zero width, \x07 bell, \x00 nul, ﬁ ligature, Ελληνικά, العربية, हिन्दी, 한국어",
        "<h1>Title</h1>\n\n\n<table><tr><td>1</td></tr></table> <strong>b</strong>",
        "       indented   -   list\n\t\t- item\n\n\n\n\n",
        "1234567890 3.14159 1,000,000 0x1F 2026-11-27",
        "x" * 300,
        " leading and trailing ",
        "",
    ]
    alphabet = list("abcdeXYZ019 .,;:!?-_'\"()[]{}<>/\\\n\t") + list("éüßñçø日本語中文한글ыжЖ€£→∑🤖👩💻🍳") + ["\u2581"]
    rng = random.Random(14)
    fixed += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))) for _ in range(300)]
    return fixed


def _same_as(twin: SpmBackend, rust: Any) -> bool:
    """Whether the twin gives the Rust tokenizer's ids, texts and token ids on the probes."""
    import random

    for text in _probe_texts():
        for special in (True, False):
            if twin.encode(text, special).ids != rust.encode(text, add_special_tokens=special).ids:
                return False
    size = rust.get_vocab_size(with_added_tokens=True)
    if twin.get_vocab_size() != size:
        return False
    for i in range(size):
        if twin.decode([i]) != rust.decode([i], skip_special_tokens=False):
            return False
    rng = random.Random(15)
    for _ in range(2000):
        ids = [rng.randrange(size) if rng.random() < 0.4 else rng.randrange(min(size, 600)) for _ in range(12)]
        for skip in (True, False):
            if twin.decode(ids, skip) != rust.decode(ids, skip_special_tokens=skip):
                return False
    return all(twin.token_to_id(t) == rust.token_to_id(t) for t in ("<eos>", "<end_of_turn>", "▁the", "no such"))


def _cache_key_dir(tokenizer_json: Path, cache: Path) -> Path:
    import hashlib
    import sys

    import sentencepiece

    stat = tokenizer_json.stat()
    key = (
        f"{tokenizer_json.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:py{sys.version_info[:2]}:"
        f"sentencepiece{sentencepiece.__version__}:twin1"
    )
    return cache / hashlib.sha256(key.encode()).hexdigest()[:16]


def _write_twin(tokenizer_json: Path, rust: Any, target: Path) -> None:
    """Write the SentencePiece twin of a tokenizer.json into `target`, if its layout allows one and it gives the
    same ids and texts as `rust` on the probes."""
    import json
    import os
    import shutil

    made = spm_twin(json.loads(tokenizer_json.read_text(encoding="utf-8")))
    if made is None:
        return
    model, meta = made
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    try:
        if not _same_as(SpmBackend(model, meta), rust):
            return
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / SPM_MODEL).write_bytes(model)
        (tmp / SPM_META).write_text(json.dumps(meta), encoding="utf-8")
        os.replace(tmp, target)
    except OSError:  # a read-only or full cache only costs speed
        pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_backend(tokenizer_json: Path, cache: Path | None = None) -> Any:
    """The tokenizer of a tokenizer.json: its SentencePiece twin from `cache` when there is a good one (written
    on the first load), else the Rust `tokenizers.Tokenizer` read whole."""
    if cache is None:
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(tokenizer_json))
    target = _cache_key_dir(tokenizer_json, cache)
    if (target / SPM_MODEL).exists() and (target / SPM_META).exists():
        try:
            return SpmBackend.load(target)
        except Exception:  # noqa: BLE001 -- a damaged copy: read the file whole and write it again
            import shutil

            shutil.rmtree(target, ignore_errors=True)
    from tokenizers import Tokenizer

    rust = Tokenizer.from_file(str(tokenizer_json))
    _write_twin(Path(tokenizer_json), rust, target)
    return rust
