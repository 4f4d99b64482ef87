"""The library API (`import revprompt`): cheap to import, `analyze(text)` on a lazily loaded engine, and the names
a notebook or a plugin needs."""

from __future__ import annotations

import subprocess
import sys

import revprompt


def test_import_is_cheap_and_names_load_on_first_use():
    """No torch (nor transformers, nor the model) at import time, nor for the plugin-facing names."""
    code = (
        "import sys, revprompt\n"
        "heavy = ('torch', 'transformers', 'revprompt.core.engine')\n"
        "assert not [m for m in heavy if m in sys.modules], 'import'\n"
        "revprompt.Document, revprompt.hookimpl, revprompt.View, revprompt.BaseAnalyzer, revprompt.SweepResult\n"
        "from revprompt import hookimpl, View\n"
        "assert not [m for m in heavy if m in sys.modules], 'names'\n"
        "print(revprompt.__version__)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == revprompt.__version__


def test_public_names():
    from revprompt.core.engine import Engine
    from revprompt.core.hookspecs import hookimpl
    from revprompt.core.types import Document, SweepResult
    from revprompt.core.views import View

    assert revprompt.Engine is Engine and revprompt.hookimpl is hookimpl and revprompt.View is View
    assert revprompt.Document is Document and revprompt.SweepResult is SweepResult
    assert set(revprompt.__all__) <= set(dir(revprompt))
    for name in revprompt.__all__:
        assert getattr(revprompt, name) is not None
    try:
        revprompt.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("unknown names must raise AttributeError")


def test_analyze_loads_the_bundled_engine_once(tiny_engine, monkeypatch):
    from revprompt.core.engine import Engine
    from revprompt.core.types import DEFAULT_CONFIGS, SweepResult

    loads = []

    def load(cls, model=None, **kwargs):
        loads.append((model, kwargs))
        return tiny_engine

    monkeypatch.setattr(Engine, "load", classmethod(load))
    monkeypatch.setattr(revprompt, "_engine", None)
    text = "Paris is the capital of France. It is known for the Eiffel Tower."
    first = revprompt.analyze(text)
    second = revprompt.analyze("Water tomato plants deeply, twice a week.")
    assert isinstance(first, SweepResult) and isinstance(second, SweepResult)
    assert first.candidates and [c.rank for c in first.candidates] == list(range(1, len(first.candidates) + 1))
    assert first.candidates == sorted(first.candidates, key=lambda c: c.rank)
    # once, with the CLI's defaults (the same helper every command uses)
    assert loads == [
        (
            None,
            {
                "dtype": "auto",
                "device": "auto",
                "top_n": 10,
                "max_new_tokens": 48,
                "max_input_tokens": None,
                "configs": DEFAULT_CONFIGS,
            },
        )
    ]
    assert revprompt.default_engine() is tiny_engine
    # another engine, given
    assert revprompt.analyze(text, engine=tiny_engine).candidates[0].prompt == first.candidates[0].prompt
    assert len(loads) == 1
