"""What a source plugin is: it turns a target the user typed into Documents. Sources never touch the model.

A source subclasses `Source` and overrides what it needs: `claims`, `discover` and `load` always; `check`,
`estimate` and the feature flags (`streaming`, `concurrent_loads`) when it has them; `cli_options` for the
`revprompt analyze` options it reads (as Harlequin's adapters declare theirs). Each call gets the run's
`SourceContext`: the command's options by name, the URIs the run already holds, and a stored document's meta.

A source written before the base class (any object with `name`, `claims`, `discover` and `load` taking an
options dict) still works: `as_source` wraps it, reading its optional attributes once, and the context it is
handed reads like the options dict it expects (`ctx.get("max_pages")`, `ctx["timeout"]`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any

import click

from ..core.types import Document


def _no_stored_meta(uri: str) -> dict | None:
    return None


@dataclass
class SourceContext(MutableMapping[str, Any]):
    """What a source is handed for one run.

    - `options`: the command's options by name (`max_pages`, `timeout`, each source's `cli_options`, ...);
      the context reads like them (`ctx.get(name)`, `ctx[name]`), so a source written against the options
      dict keeps working;
    - `done`: the URIs the run already holds (a resumed crawl counts them towards its limit, and walks them
      from their stored links instead of fetching them);
    - `stored_meta(uri)`: a stored document's meta (a crawled page's links, its final URL), or None.
    """

    options: dict[str, Any] = field(default_factory=dict)
    done: Set[str] = frozenset()
    stored_meta: Callable[[str], dict | None] = _no_stored_meta

    @classmethod
    def of(cls, options: SourceContext | Mapping[str, Any] | None) -> SourceContext:
        """The context itself, or one around a plain options dict (what a Ray actor or an older caller hands)."""
        if isinstance(options, SourceContext):
            return options
        return cls(options if isinstance(options, dict) else dict(options or {}))

    # a mapping of the options
    def __getitem__(self, key: str) -> Any:
        return self.options[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.options[key] = value

    def __delitem__(self, key: str) -> None:
        del self.options[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.options)

    def __len__(self) -> int:
        return len(self.options)


class Source:
    """Base class of sources: every optional feature declared, with its default."""

    #: short name used by `--source NAME`
    name: str = "unnamed"
    #: one line for `revprompt plugins`
    description: str = ""
    #: discover() finds targets while fetching and yields ready Documents as it goes (the crawl): the batch
    #: consumes it lazily and shows `estimate()` as the progress bar's total
    streaming: bool = False
    #: load() is thread-safe: the batch runs a few loads ahead of the analysis in worker threads
    concurrent_loads: bool = False
    #: options this source adds to `revprompt analyze` (click.Option; its `name` is the key in the options).
    #: A value of None is left out of the options, so an option nobody gives changes no run's key.
    cli_options: Sequence[click.Option] = ()
    #: options (of this source or any other) that change how targets are fetched, not which documents a run
    #: holds: they are not part of the run key, so changing them between a run and its re-run still resumes it
    run_neutral_options: frozenset[str] = frozenset()

    def claims(self, target: str, options: SourceContext) -> bool:
        """True when this source knows how to read `target` (first claiming source wins, unless --source)."""
        return False

    def check(self, target: str, options: SourceContext) -> None:
        """Refuse a target that cannot be what the user meant (raise UserError) before a run is opened."""
        return None

    def discover(self, target: str, options: SourceContext) -> Iterable[str | Document]:
        """Expand a target into URIs to load (a sitemap into its URLs, a folder into files), or yield ready
        Documents (pasted text). URIs are yielded before any page is fetched so a resumed run can skip
        the ones already done without fetching them again."""
        raise NotImplementedError

    def load(self, uri: str, options: SourceContext) -> Document:
        """Fetch one URI into a Document. Failures come back as a Document with status 'failed' and an
        error message, never as an exception."""
        raise NotImplementedError

    def estimate(self, target: str, options: SourceContext) -> int | None:
        """A streaming source's upper bound on the rows a target makes (None: unknown)."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class _Adapted(Source):
    """A source that does not subclass `Source`: its methods and optional attributes, read once."""

    def __init__(self, wrapped: Any):
        self.wrapped = wrapped
        self.name = wrapped.name
        self.description = getattr(wrapped, "description", "")
        self.streaming = bool(getattr(wrapped, "streaming", False))
        self.concurrent_loads = bool(getattr(wrapped, "concurrent_loads", False))
        self.cli_options = tuple(getattr(wrapped, "cli_options", ()))
        self.run_neutral_options = frozenset(getattr(wrapped, "run_neutral_options", ()))

    def claims(self, target: str, options: SourceContext) -> bool:
        return bool(self.wrapped.claims(target, options))

    def check(self, target: str, options: SourceContext) -> None:
        check = getattr(self.wrapped, "check", None)
        if check is not None:
            check(target, options)

    def discover(self, target: str, options: SourceContext) -> Iterable[str | Document]:
        return self.wrapped.discover(target, options)

    def load(self, uri: str, options: SourceContext) -> Document:
        return self.wrapped.load(uri, options)

    def estimate(self, target: str, options: SourceContext) -> int | None:
        estimate = getattr(self.wrapped, "estimate", None)
        return estimate(target, options) if estimate is not None else None

    def __getattr__(self, name: str) -> Any:  # anything else the source has (`remote_loads`, its own helpers)
        wrapped = self.__dict__.get("wrapped")
        if wrapped is None:
            raise AttributeError(name)
        return getattr(wrapped, name)


def as_source(source: Any) -> Source:
    """`source` as a `Source`: itself when it subclasses it, else wrapped."""
    return source if isinstance(source, Source) else _Adapted(source)
