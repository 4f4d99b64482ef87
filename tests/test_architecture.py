"""The import rule: core/ depends on nothing above it.

core/ is the engine (model, sweep, batch, store, the analyzer contract); plugins/, tui/, training/ and datagen/
build on it. An import the other way (even a lazy one inside a function) ties the engine to a layer that may
be absent, slow to import, or about to change, so this test walks every module of core/ with `ast` and fails
on one. Registering built-ins by module name as strings (core/plugin_manager.py) is how core reaches them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "core"
ABOVE = ("plugins", "tui", "training", "datagen")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute dotted name) of every import in `path`, at any depth, relative ones resolved."""
    package = ["revprompt", *path.relative_to(ROOT).parent.parts]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from revprompt import plugins` names the package in the alias, not the module
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
            found.append((node.lineno, module))
    return found


def forbidden(name: str) -> bool:
    parts = name.split(".")
    return (parts[0] == "revprompt" and len(parts) > 1 and parts[1] in ABOVE) or parts[0] in ABOVE


def test_core_imports_nothing_above_it():
    modules = sorted(CORE.rglob("*.py"))
    assert modules, "core/ has no modules?"
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in modules
        for line, name in imported_modules(path)
        if forbidden(name)
    ]
    assert offenders == [], "core/ must not import plugins/, tui/, training/ or datagen/:\n" + "\n".join(offenders)


@pytest.mark.parametrize(
    "source,bad",
    [
        ("from revprompt.plugins.runner import prepare", True),
        ("def f():\n    from revprompt.tui import app", True),
        ("from ..training import train", True),
        ("from .. import datagen", True),
        ("import revprompt.plugins.base as base", True),
        ("from .store import Store", False),
        ("from revprompt.sources.text import read_stdin", False),
        ("from . import hookspecs", False),
    ],
)
def test_the_walk_sees_every_kind_of_import(tmp_path, monkeypatch, source, bad):
    module = CORE / "__architecture_probe__.py"  # never written: the parse is fed through a fake path
    monkeypatch.setattr(Path, "read_text", lambda self, encoding=None: source)
    assert any(forbidden(name) for _, name in imported_modules(module)) is bad


PACKAGE_DIRS = ("core", "sources", "plugins", "tui", "training", "datagen", "bench")


def test_only_the_store_touches_the_duckdb_connection():
    """`.con` is the Store's own: the batch, the TUI, datagen and the plugins go through Store methods."""
    offenders = []
    for folder in PACKAGE_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == CORE / "store.py":
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            offenders += [
                f"{path.relative_to(ROOT)}:{node.lineno}"
                for node in ast.walk(tree)
                if isinstance(node, ast.Attribute) and node.attr == "con"
            ]
    assert offenders == [], "use a Store method instead of its connection:\n" + "\n".join(offenders)


def test_the_tui_names_no_builtin_analyzer():
    """The TUI's analysis tabs come from the analyzers' views (core/views.py): it imports no analyzer and names
    none of their tables, so a third-party analyzer gets its tab the same way a built-in one does."""
    from revprompt.core.views import table_names
    from revprompt.plugins.builtin import register_analyzers

    analyzers: list = []
    register_analyzers(analyzers.append)
    names = {a.name for a in analyzers} | {t for a in analyzers for t in table_names(a.tables)}
    offenders = []
    for path in sorted((ROOT / "tui").rglob("*.py")):
        offenders += [
            f"{path.relative_to(ROOT)}:{line} imports {name}"
            for line, name in imported_modules(path)
            if name.split(".")[:2] == ["revprompt", "plugins"]
        ]
        text = path.read_text(encoding="utf-8")
        offenders += [f"{path.relative_to(ROOT)} names {name}" for name in sorted(names) if name in text]
    assert offenders == [], "\n".join(offenders)
