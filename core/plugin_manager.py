"""Build the pluggy manager: built-ins first, then everything in the `revprompt` entry-point group."""

from __future__ import annotations

import importlib
from functools import lru_cache

import pluggy

from ..sources.base import Source, as_source
from . import hookspecs

# Modules that implement hooks; each is registered exactly as a third-party plugin would be.
BUILTIN_PLUGINS = [
    "revprompt.sources.builtin",
    "revprompt.plugins.builtin",
    "revprompt.training.commands",
    "revprompt.datagen.commands",
    "revprompt.tui.commands",
    "revprompt.plugins.commands",
    "revprompt.plugins.match_commands",
]


@lru_cache(maxsize=1)
def get_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("revprompt")
    pm.add_hookspecs(hookspecs)
    for name in BUILTIN_PLUGINS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # A built-in that is not written yet must not break the rest; a missing dependency must show.
            if exc.name == name:
                continue
            raise
        pm.register(module, name=name)
    pm.load_setuptools_entrypoints("revprompt")
    return pm


def registered(hook_name: str) -> list:
    """Collect what every plugin registers through `register_sources` / `register_analyzers`."""
    items: list = []
    getattr(get_plugin_manager().hook, hook_name)(register=items.append)
    return items


def sources() -> list[Source]:
    """The registered sources, each a `Source` (one that does not subclass it is wrapped: sources/base.py)."""
    return [as_source(s) for s in registered("register_sources")]


def analyzers() -> list:
    return registered("register_analyzers")


def plugin_names() -> list[tuple[str, str]]:
    """(plugin name, where it came from) for `revprompt plugins`."""
    pm = get_plugin_manager()
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    out = []
    for name, plugin in pm.list_name_plugin():
        dist = dists.get(id(plugin))
        origin = f"{dist.project_name} {dist.version}" if dist else "built-in"
        out.append((name, origin))
    return out
