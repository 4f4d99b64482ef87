"""Inference runtime (issue 14): the dtype and device chosen by the hardware, the one-line input-window note,
the fast warm load, bf16 through the packed linears, and the CUDA path (skipped without a GPU)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import cli_runner, make_tiny_gemma

from revprompt.core import cpu_linear, hardware
from revprompt.core.errors import UserError
from revprompt.core.types import DEFAULT_SWEEP, Candidate, DecodeConfig, SweepResult

SHARED = Path(__file__).resolve().parents[2] / "shared"  # ../shared beside the checkout: real pairs and pages

AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma\n"
SAPPHIRE = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
TEXT = "Sourdough needs flour, water, salt and a lively starter. Mix, fold, rest overnight and bake it hot."
cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


# -- dtype and device -----------------------------------------------------------------------------------------
def test_cpu_flags_decide_native_bf16():
    assert not hardware.cpu_has_native_bf16(AVX2_ONLY)
    assert hardware.cpu_has_native_bf16(SAPPHIRE)
    assert hardware.cpu_has_native_bf16("flags : avx512_bf16\n")  # either flag is enough
    assert not hardware.cpu_has_native_bf16("")  # no /proc/cpuinfo (macOS): fp32, the safe choice
    assert hardware.describe_cpu(AVX2_ONLY) == "avx2"


def test_auto_dtype_follows_the_cpu(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda cpuinfo=None: True)
    assert hardware.resolve_dtype("auto", "cpu") == "bfloat16"
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda cpuinfo=None: False)
    assert hardware.resolve_dtype("auto", "cpu") == "float32"
    assert hardware.resolve_dtype("bfloat16", "cpu") == "bfloat16"  # an explicit choice is kept
    with pytest.raises(UserError):
        hardware.resolve_dtype("float8", "cpu")


def test_device_auto_and_a_missing_gpu(monkeypatch):
    monkeypatch.setattr(hardware, "cuda_available", lambda: False)
    assert hardware.resolve_device("auto") == "cpu"
    with pytest.raises(UserError, match="no CUDA GPU"):
        hardware.resolve_device("cuda")
    monkeypatch.setattr(hardware, "cuda_available", lambda: True)
    assert hardware.resolve_device("auto") == "cuda"


def test_gpu_batch_follows_free_memory():
    """64 documents per forward on a roomy GPU; fewer, never zero, when half its free memory is short."""
    gib = 2**30
    assert hardware.gpu_batch_docs(70 * gib) == hardware.GPU_BATCH_DOCS == 64
    assert hardware.gpu_batch_docs(1 * gib) == 16  # half of 1 GiB at 32 MiB a document
    assert hardware.gpu_batch_docs(0) == 1


def test_engine_batch_default_is_per_device(gemma_tokenizer):
    from revprompt.core.engine import DEFAULT_BATCH_DOCS, Engine

    engine = Engine(make_tiny_gemma(), gemma_tokenizer)
    assert engine.device == "cpu" and engine.batch_docs == DEFAULT_BATCH_DOCS
    assert Engine(make_tiny_gemma(), gemma_tokenizer, batch_docs=3).batch_docs == 3
    if torch.cuda.is_available():
        gpu = Engine(make_tiny_gemma().to("cuda"), gemma_tokenizer)
        assert gpu.batch_docs == hardware.gpu_batch_docs()


def test_model_load_resolves_auto(monkeypatch, tmp_path):
    """`load(dtype="auto")` hands the loader the dtype the hardware picked, never "auto" itself."""
    from revprompt.core import fast_load
    from revprompt.core import model as model_mod

    seen = {}
    monkeypatch.setattr(model_mod, "resolve", lambda name: model_mod.ModelSpec("x", tmp_path))
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda cpuinfo=None: True)
    monkeypatch.setattr(hardware, "cuda_available", lambda: False)
    monkeypatch.setattr(fast_load, "load_model", lambda path, dtype, device: seen.update(d=dtype, v=device))
    monkeypatch.setattr(fast_load, "load_tokenizer", lambda path: None)
    model_mod.load(None)
    assert seen == {"d": "bfloat16", "v": "cpu"}


def test_training_uses_the_shared_helper():
    from revprompt.training import train

    assert train.cpu_has_native_bf16 is hardware.cpu_has_native_bf16


# -- the input-window note ------------------------------------------------------------------------------------
class WindowStub:
    """Reads texts up to `max_input_tokens` words and warns per text like the real engine."""

    batch_docs = 1
    model_name = "stub"
    window_origin = "trained"

    def __init__(self, window=5):
        self.max_input_tokens = window

    def sweep(self, text: str, kind: str = "response") -> SweepResult:
        import warnings

        from revprompt.core.engine import InputTruncatedWarning

        longer = len(text.split()) > self.max_input_tokens
        if longer:
            warnings.warn("input is longer than the model window", InputTruncatedWarning, stacklevel=2)
        cand = Candidate(
            prompt="Write about bread",
            token_ids=[5],
            tokens=["x"],
            token_probs=[0.9],
            perplexity=1.5,
            mean_nll=0.4,
            configs=[DecodeConfig(4, 0.2)],
            rank=1,
        )
        return SweepResult([cand], n_input_tokens=min(len(text.split()), self.max_input_tokens), truncated=longer)


@pytest.fixture
def cli(monkeypatch, capsys):
    """`revprompt ARGS...` in this process with the stub engine: (exit code, stdout, stderr)."""
    return cli_runner(monkeypatch, capsys, WindowStub)


def test_batch_says_once_how_much_was_read(cli, tmp_path, db_path):
    folder = tmp_path / "pages"
    folder.mkdir()
    for i in range(3):
        (folder / f"long{i}.md").write_text(f"page {i}: " + TEXT)
    (folder / "short.md").write_text("Bake bread.")
    code, _, err = cli("analyze", str(folder), "--db", db_path, "--no-plugins")
    assert code == 0, err
    assert "warning" not in err  # no warning per page
    note = "inputs are read up to 5 tokens (the window the model was trained on); 3 of 4 texts were longer"
    assert err.count(note) == 1, err


def test_single_text_gets_one_line_note(cli, db_path):
    code, _, err = cli("analyze", TEXT, "--db", db_path, "--no-plugins")
    assert code == 0, err
    notes = [line for line in err.splitlines() if "tokens" in line and "read" in line]
    assert notes == [
        "revprompt: note: the text is longer than 5 tokens; its first 5 were read (the window the "
        "model was trained on; --max-input-tokens to change)"
    ]
    code, _, err = cli("analyze", "Bake bread.", "--db", db_path, "--no-plugins")
    assert code == 0 and "read" not in err  # a text inside the window needs no note


def test_engine_load_records_where_the_window_came_from(monkeypatch, tiny_model, gemma_tokenizer):
    from revprompt.core import model as model_mod
    from revprompt.core.engine import Engine

    spec = model_mod.ModelSpec("tiny", None, trained_response_tokens=192)
    monkeypatch.setattr(model_mod, "load", lambda name, dtype, device: (tiny_model, gemma_tokenizer, spec))
    engine = Engine.load("tiny")
    assert (engine.max_input_tokens, engine.window_origin) == (192, "trained")
    engine = Engine.load("tiny", max_input_tokens=64)
    assert (engine.max_input_tokens, engine.window_origin) == (64, "option")
    assert engine.describe()["dtype"] == "float32" and engine.describe()["device"] == "cpu"


# -- fast warm load -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_model_dir(tmp_path_factory):
    from conftest import make_tiny_gemma

    path = tmp_path_factory.mktemp("cache") / "merged-tiny"
    model = make_tiny_gemma(vocab_size=512)
    model.config.tie_word_embeddings = True  # like the real Gemma: no lm_head in the file
    model.tie_weights()
    model.save_pretrained(path)
    return path


def test_fast_load_equals_from_pretrained_without_progress_bars(small_model_dir, monkeypatch, capfd):
    from transformers import AutoModelForCausalLM

    from revprompt.core import fast_load

    expected = AutoModelForCausalLM.from_pretrained(str(small_model_dir)).eval()
    capfd.readouterr()

    def refuse(*a, **k):
        raise AssertionError("the fast path fell back to from_pretrained")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", refuse)
    model = fast_load.load_model(small_model_dir, "float32", "cpu")
    ids = torch.tensor([[2, 10, 20, 30, 40]])
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, expected(input_ids=ids).logits)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # tied, as saved
    out = capfd.readouterr()
    assert "Loading weights" not in out.err + out.out


def test_bf16_weights_are_cached_once_in_owned_dirs(small_model_dir, monkeypatch):
    from revprompt.core import fast_load

    monkeypatch.setenv("REVPROMPT_CACHE", str(small_model_dir.parent))
    model = fast_load.load_model(small_model_dir, "bfloat16", "cpu")
    assert next(model.parameters()).dtype == torch.bfloat16
    cached = small_model_dir / "model.bfloat16.safetensors"
    assert cached.exists() and fast_load._file_dtypes(cached) == {"BF16"}
    # A directory revprompt does not own is never written to.
    monkeypatch.setenv("REVPROMPT_CACHE", str(small_model_dir.parent / "elsewhere"))
    assert fast_load._weights_for(small_model_dir, "bfloat16").name == "model.safetensors"


def test_fast_tokenizer_matches_autotokenizer(gemma_tokenizer, monkeypatch):
    from revprompt.core import fast_load
    from revprompt.core.model import base_model_dir
    from revprompt.core.tokenizer import JsonTokenizer

    fast = fast_load.load_tokenizer(base_model_dir())
    assert isinstance(fast, JsonTokenizer)  # the Rust tokenizer alone: no transformers on the analyze path
    text = "Paris is the capital of France <eos> and\n###\n<end_of_turn> café ☕"
    ids = gemma_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert fast(text, add_special_tokens=False)["input_ids"] == ids
    tricky = [
        text,
        "  two  spaces,\ttabs\tand\r\nline ends  ",
        "def f(x):\n    return {'a': [1, 2]}  # código, 日本語, emoji 🧑‍🍳, math ∑ x² ≤ 3",
        "<bos>Already <pad> special <mask> tokens <start_of_turn>user\n",
        "\u200b zero width, \x07 bell, ﬁ ligature, Ελληνικά, العربية",
    ]
    for t in tricky:
        for special in (True, False):
            want = gemma_tokenizer(t, add_special_tokens=special)["input_ids"]
            assert fast(t, add_special_tokens=special)["input_ids"] == want
            for skip in (True, False):
                assert fast.decode(want, skip_special_tokens=skip) == gemma_tokenizer.decode(
                    want, skip_special_tokens=skip
                )
    assert (fast.bos_token_id, fast.eos_token_id, fast.pad_token_id, fast.unk_token_id) == (
        gemma_tokenizer.bos_token_id,
        gemma_tokenizer.eos_token_id,
        gemma_tokenizer.pad_token_id,
        gemma_tokenizer.unk_token_id,
    )
    assert fast.decode(ids, skip_special_tokens=True) == gemma_tokenizer.decode(ids, skip_special_tokens=True)
    assert fast.convert_tokens_to_ids("<end_of_turn>") == gemma_tokenizer.convert_tokens_to_ids("<end_of_turn>")
    assert fast.convert_tokens_to_ids("no-such-token-here") == gemma_tokenizer.unk_token_id
    # REVPROMPT_HF_MODEL=1 (comparisons): transformers' tokenizer around the same file, the same ids.
    monkeypatch.setenv(fast_load.HF_MODEL_ENV, "1")
    hf = fast_load.load_tokenizer(base_model_dir())
    from transformers import PreTrainedTokenizerFast

    assert isinstance(hf, PreTrainedTokenizerFast) and hf(text, add_special_tokens=False)["input_ids"] == ids


def test_a_dir_without_tokenizer_json_gets_a_cached_one(tmp_path, monkeypatch, gemma_tokenizer):
    from transformers import AutoTokenizer

    from revprompt.core import fast_load

    monkeypatch.setenv("REVPROMPT_CACHE", str(tmp_path / "cache"))
    model_dir = tmp_path / "slow-only"
    model_dir.mkdir()
    (model_dir / "tokenizer.model").write_bytes(b"stand-in for a sentencepiece file")
    calls = []
    monkeypatch.setattr(AutoTokenizer, "from_pretrained", lambda path, **k: calls.append(path) or gemma_tokenizer)
    first = fast_load.load_tokenizer(model_dir)
    second = fast_load.load_tokenizer(model_dir)
    assert len(calls) == 1 and first is gemma_tokenizer  # the second load read the cached tokenizer.json
    assert (
        second("bread", add_special_tokens=False)["input_ids"]
        == gemma_tokenizer("bread", add_special_tokens=False)["input_ids"]
    )
    assert second.eos_token_id == gemma_tokenizer.eos_token_id


# -- bf16 end to end ------------------------------------------------------------------------------------------
@pytest.mark.skipif(torch.bfloat16 not in cpu_linear.packable_dtypes(), reason="no native oneDNN bf16 here")
def test_bf16_engine_sweeps_on_packed_linears(gemma_tokenizer):
    from conftest import make_tiny_gemma

    from revprompt.core.engine import Engine

    model = make_tiny_gemma().to(torch.bfloat16)
    engine = Engine(model, gemma_tokenizer, configs=DEFAULT_SWEEP[:4], max_new_tokens=5)
    assert model.lm_head._revprompt_packed_key is None  # switched to the packed path
    result = engine.sweep(TEXT)
    assert model.lm_head._revprompt_packed is not None
    assert result.candidates and all(math.isfinite(c.perplexity) for c in result.candidates)
    assert engine.describe()["dtype"] == "bfloat16"


def test_the_cache_is_passed_under_the_name_this_transformers_uses():
    """transformers renamed past_key_values to cache; under the wrong name a forward silently runs uncached."""
    import inspect

    from transformers.models.gemma3.modeling_gemma3 import Gemma3TextModel

    from revprompt.core.hf_compat import CACHE_NAME, cache_kwargs

    assert CACHE_NAME in inspect.signature(Gemma3TextModel.forward).parameters
    assert list(cache_kwargs("c")) == [CACHE_NAME]


# -- CUDA (skipped without a GPU) -----------------------------------------------------------------------------
@cuda_only
def test_cuda_sweep_matches_the_cpu(gemma_tokenizer):
    from conftest import make_tiny_gemma

    from revprompt.core.engine import Engine

    configs = DEFAULT_SWEEP[:6]
    cpu = Engine(make_tiny_gemma(), gemma_tokenizer, configs=configs, max_new_tokens=6)
    gpu = Engine(make_tiny_gemma().to("cuda"), gemma_tokenizer, configs=configs, max_new_tokens=6)
    assert gpu.describe()["device"] == "cuda"
    want, got = cpu.sweep(TEXT), gpu.sweep(TEXT)
    assert [c.prompt for c in got.candidates] == [c.prompt for c in want.candidates]
    for a, b in zip(got.candidates, want.candidates):
        assert a.perplexity == pytest.approx(b.perplexity, rel=1e-3)


@cuda_only
def test_cuda_batch_sweep_and_bf16(gemma_tokenizer):
    from conftest import make_tiny_gemma

    from revprompt.core.engine import Engine

    engine = Engine(
        make_tiny_gemma().to("cuda", torch.bfloat16),
        gemma_tokenizer,
        configs=DEFAULT_SWEEP[:6],
        max_new_tokens=6,
        batch_docs=3,
    )
    results = dict(engine.sweep_many([TEXT, "Bake bread at 250 C.", "Water tomatoes in the morning."]))
    assert sorted(results) == [0, 1, 2] and all(r.candidates for r in results.values())


@cuda_only
def test_load_puts_the_model_on_the_gpu(small_model_dir):
    from revprompt.core import fast_load

    model = fast_load.load_model(small_model_dir, "bfloat16", "cuda")
    assert next(model.parameters()).device.type == "cuda"


def test_tokenizer_twin_reads_the_same_tokenizer(tmp_path):
    """The SentencePiece twin of Gemma's tokenizer.json (core/tokenizer.py: 0.1 s to load against 1.1-1.5 s) is
    written on the first load and gives the Rust tokenizer's ids and texts on real chat pairs and whole web pages;
    a damaged twin is replaced; a layout it cannot copy is read whole."""
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers

    from revprompt.core import tokenizer as tok
    from revprompt.core.model import base_model_dir

    source = base_model_dir() / "tokenizer.json"
    whole = Tokenizer.from_file(str(source))
    first = tok.load_backend(source, tmp_path)  # reads the file, writes the twin
    assert isinstance(first, Tokenizer)
    [twin_dir] = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert sorted(p.name for p in twin_dir.iterdir()) == sorted([tok.SPM_MODEL, tok.SPM_META])
    twin = tok.load_backend(source, tmp_path)
    assert isinstance(twin, tok.SpmBackend)

    texts = ["<start_of_turn>user\nCafé ☕ costs 3€ — why?<end_of_turn>\n###\n<eos> and <unk>?", "   -  x\n\n\t"]
    dev = SHARED / "data" / "dev" / "dev100.jsonl"
    if dev.exists():
        for line in dev.read_text(encoding="utf-8").splitlines()[:60]:
            pair = json.loads(line)
            texts += [pair["response"], pair["prompt"]]
    pages = SHARED / "data" / "web" / "pages"
    if pages.exists():
        texts += [p.read_text(encoding="utf-8", errors="replace") for p in sorted(pages.iterdir())[:20]]
    for text in texts:
        for special in (True, False):
            ids = whole.encode(text, add_special_tokens=special).ids
            assert twin.encode(text, add_special_tokens=special).ids == ids
            for skip in (True, False):
                assert twin.decode(ids, skip_special_tokens=skip) == whole.decode(ids, skip_special_tokens=skip)
    broken = [whole.token_to_id("<0xE2>"), whole.token_to_id("<0x82>"), whole.token_to_id("▁ok"), 1]
    assert twin.decode(broken) == whole.decode(broken, skip_special_tokens=False)  # one U+FFFD per byte
    for token in ("<end_of_turn>", "▁the", "no such token"):
        assert twin.token_to_id(token) == whole.token_to_id(token)
    assert twin.get_vocab_size() == whole.get_vocab_size(with_added_tokens=True)

    (twin_dir / tok.SPM_MODEL).write_bytes(b"not a sentencepiece model")
    third = tok.load_backend(source, tmp_path)  # the damaged twin: read whole, written again
    assert isinstance(third, Tokenizer)
    assert isinstance(tok.load_backend(source, tmp_path), tok.SpmBackend)

    word_level = Tokenizer(models.WordLevel({"hello": 0, "world": 1, "[UNK]": 2}, unk_token="[UNK]"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    other = tmp_path / "word-level.json"
    word_level.save(str(other))
    assert tok.load_backend(other, tmp_path / "c2").encode("hello world").ids == [0, 1]
    assert tok.load_backend(other, tmp_path / "c2").encode("hello world").ids == [0, 1]
    assert not (tmp_path / "c2").exists() or not any((tmp_path / "c2").iterdir())


def test_a_twin_that_differs_is_not_kept(tmp_path, monkeypatch):
    """A twin whose merges are not the file's (every merge scored the same) fails the probe set and is never
    written: the tokenizer is read whole, on this load and the next."""
    from sentencepiece import sentencepiece_model_pb2 as pb
    from tokenizers import Tokenizer

    from revprompt.core import tokenizer as tok
    from revprompt.core.model import base_model_dir

    real = tok.spm_twin

    def flat_scores(raw):
        model, meta = real(raw)
        proto = pb.ModelProto()
        proto.ParseFromString(model)
        for piece in proto.pieces:
            if piece.type == pb.ModelProto.SentencePiece.NORMAL:
                piece.score = 0.0
        return proto.SerializeToString(), meta

    monkeypatch.setattr(tok, "spm_twin", flat_scores)
    source = base_model_dir() / "tokenizer.json"
    assert isinstance(tok.load_backend(source, tmp_path), Tokenizer)
    assert isinstance(tok.load_backend(source, tmp_path), Tokenizer)
    assert not any(tmp_path.iterdir())
