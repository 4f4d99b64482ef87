"""Shared fixtures: a tiny random-weight Gemma 3 (real tokenizer), temp DuckDB files, the real model on demand."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def make_tiny_gemma(seed: int = 0, vocab_size: int = 262144, sliding_window: int = 512):
    """A 2-layer Gemma 3 with random weights: same code paths as the real model, milliseconds per step."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        layer_types=["sliding_attention", "full_attention"],
        sliding_window=sliding_window,
        max_position_embeddings=4096,
        bos_token_id=2,
        eos_token_id=1,
        pad_token_id=0,
        tie_word_embeddings=False,
    )
    model = Gemma3ForCausalLM(config).eval()
    # Default init gives near-uniform next-token distributions and tied weights make the model copy its
    # input; untied, moderately peaked heads give the decoder real, varied choices.
    with torch.no_grad():
        model.model.embed_tokens.weight.normal_(0, 1.0)
        model.lm_head.weight.normal_(0, 0.5)
    return model


def make_tiny_own_gemma(seed: int = 0, sliding_window: int = 512):
    """`make_tiny_gemma`'s weights in revprompt's own Gemma 3 (core/gemma3.py), the model the engine runs."""
    import json

    from revprompt.core.gemma3 import Gemma3Config, Gemma3ForCausalLM

    hf = make_tiny_gemma(seed=seed, sliding_window=sliding_window)
    config = Gemma3Config.from_dict(json.loads(hf.config.to_json_string()))
    return Gemma3ForCausalLM.from_state_dict(config, {k: v.clone() for k, v in hf.state_dict().items()}).eval()


@pytest.fixture(scope="session")
def gemma_tokenizer():
    """The real Gemma 3 tokenizer (from the packaged base, provisioned once into the cache)."""
    from transformers import AutoTokenizer

    from revprompt.core.model import base_model_dir

    return AutoTokenizer.from_pretrained(str(base_model_dir()))


@pytest.fixture(scope="session")
def tiny_model():
    return make_tiny_gemma()


@pytest.fixture(scope="session")
def tiny_engine(tiny_model, gemma_tokenizer):
    from revprompt.core.engine import Engine

    return Engine(tiny_model, gemma_tokenizer, model_name="tiny-random", max_new_tokens=12)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_model, gemma_tokenizer):
    """The tiny model saved as a model directory, for `--model DIR` on the CLI and in subprocesses."""
    path = tmp_path_factory.mktemp("tiny-model")
    tiny_model.save_pretrained(path)
    gemma_tokenizer.save_pretrained(path)
    return str(path)


def cli_runner(monkeypatch, capsys, engine_factory):
    """`revprompt ARGS...` run in this process with `Engine.load` answering `engine_factory()`:
    returns run(*args) -> (exit code, stdout, stderr), and fails on any traceback."""
    from revprompt.core.cli import main
    from revprompt.core.engine import Engine

    monkeypatch.setattr(Engine, "load", classmethod(lambda cls, *a, **k: engine_factory()))

    def run(*args):
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code or 0
        out = capsys.readouterr()
        assert "Traceback" not in out.err + out.out
        return code, out.out, out.err

    return run


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "test.duckdb")


@pytest.fixture(scope="session")
def real_engine():
    """The real packaged model (base, or the shipped adapter when present), in fp32: the fast sweep is promised
    to equal the reference there (bf16 may break near-ties differently). Slow: integration tests only."""
    from revprompt.core.engine import Engine

    return Engine.load(dtype="float32")


SAMPLE_PLUGIN = os.path.join(os.path.dirname(__file__), "fixtures", "sample_plugin")


@pytest.fixture(scope="session")
def sample_plugin_dir(tmp_path_factory):
    """The third-party sample plugin (tests/fixtures/sample_plugin), built and installed (pip --target) into a
    temporary folder, never into the venv."""
    import shutil
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("sample_plugin")
    src = root / "src"
    shutil.copytree(SAMPLE_PLUGIN, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = root / "site"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "--target",
            str(target),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert list(target.glob("revprompt_sample_plugin-*.dist-info"))
    return target


@pytest.fixture
def sample_on_path(sample_plugin_dir, monkeypatch):
    """The sample plugin importable and found by its entry point in this process, for one test."""
    import sys

    from revprompt.core.plugin_manager import get_plugin_manager

    monkeypatch.syspath_prepend(str(sample_plugin_dir))
    get_plugin_manager.cache_clear()
    yield sample_plugin_dir
    get_plugin_manager.cache_clear()
    sys.modules.pop("revprompt_sample_plugin", None)
