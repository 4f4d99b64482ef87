"""revprompt: propose the prompts that most plausibly produced a text.

The library, without the CLI (as `llm` exports its own):

    import revprompt

    result = revprompt.analyze("Paris is the capital of France. It is known for ...")
    for cand in result.candidates:
        print(cand.rank, f"{cand.perplexity:.2f}", cand.prompt)

- `analyze(text)` -> `SweepResult`: the ranked candidates, from the bundled model, loaded on the first call and
  kept for the next ones (`default_engine()`); `analyze(text, engine=...)` uses another `Engine`.
- `Engine` (`Engine.load(model, ...)` or `load_engine(...)`, which fills in the CLI's defaults), `SweepResult`,
  `Candidate`, `Document`, `Store`.
- Plugins: `hookimpl`, `BaseAnalyzer`, `View` (core/hookspecs.py, core/analyzers.py, core/views.py).

Every name is imported on first use: `import revprompt` loads neither torch nor the model.
"""

from __future__ import annotations

import importlib
import threading
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# name -> the module (relative to this package) that defines it
_LAZY = {
    "Engine": ".core.engine",
    "load_engine": ".core.cli_options",
    "SweepResult": ".core.types",
    "Candidate": ".core.types",
    "Document": ".core.types",
    "Store": ".core.store",
    "hookimpl": ".core.hookspecs",
    "BaseAnalyzer": ".core.analyzers",
    "View": ".core.views",
}

__all__ = [  # noqa: RUF022 - grouped as the docstring lists them
    "__version__",
    "analyze",
    "default_engine",
    "Engine",
    "load_engine",
    "SweepResult",
    "Candidate",
    "Document",
    "Store",
    "hookimpl",
    "BaseAnalyzer",
    "View",
]

if TYPE_CHECKING:
    from .core.analyzers import BaseAnalyzer
    from .core.cli_options import load_engine
    from .core.engine import Engine
    from .core.hookspecs import hookimpl
    from .core.store import Store
    from .core.types import Candidate, Document, SweepResult
    from .core.views import View

_engine: Engine | None = None
_engine_lock = threading.Lock()


def default_engine() -> Engine:
    """The bundled model's engine with the CLI's defaults, loaded on first use and then kept (one per process;
    safe to call from several threads)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            from .core.cli_options import load_engine

            _engine = load_engine()
        return _engine


def analyze(text: str, *, engine: Engine | None = None) -> SweepResult:
    """The ranked candidate prompts for `text` (nothing is stored: `revprompt analyze` keeps results in DuckDB)."""
    return (engine if engine is not None else default_engine()).sweep(text)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
