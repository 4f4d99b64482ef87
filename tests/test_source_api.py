"""The source API (sources/base.py): a `SourceContext` per run, a `Source` base class with the optional
features declared, sources that declare their own `revprompt analyze` options, and older sources still read."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from revprompt.core.analyze_command import batch_options
from revprompt.core.batch import BatchRunner, target_key
from revprompt.core.cli import cli
from revprompt.core.errors import UserError
from revprompt.core.hookspecs import hookimpl
from revprompt.core.plugin_manager import get_plugin_manager
from revprompt.core.store import Store
from revprompt.core.types import Document
from revprompt.sources.base import Source, SourceContext, as_source


class ShoutSource(Source):
    """Declares an analyze option; check() reports what its context says, so the CLI shows it."""

    name = "shout"
    description = "test source"
    cli_options = (click.Option(["--shout-level"], type=int, default=None, help="How loud."),)
    run_neutral_options = frozenset({"shout_level"})

    def check(self, target, options):
        raise UserError(f"shout level {options.get('shout_level')!r}, max_depth {options.get('max_depth')!r}")


class OldSource:
    """Written before the base class: no features declared, plain options dict expected."""

    name = "old"

    def claims(self, target, options):
        return target.startswith("old:")

    def discover(self, target, options):
        return [target + "/1", target + "/2"]

    def load(self, uri, options):
        return Document(uri=uri, text=f"{uri} at timeout {options.get('timeout')}", source=self.name)


class _Plugin:
    @hookimpl
    def register_sources(self, register):
        register(ShoutSource())
        register(OldSource())


@pytest.fixture
def extra_sources():
    get_plugin_manager.cache_clear()
    get_plugin_manager().register(_Plugin(), name="test-sources")
    yield
    get_plugin_manager.cache_clear()


def test_analyze_keeps_the_crawl_options_where_they_were():
    out = CliRunner().invoke(cli, ["analyze", "--help"]).output
    order = [out.index(flag) for flag in ("--max-pages", "--max-depth", "--crawl-delay", "--strip-params")]
    assert order == sorted(order)


def test_run_keys_and_run_neutral_options_are_those_of_before():
    """The crawl's options moved into the crawl source: the options a run is keyed by did not change."""
    assert batch_options() == {
        "max_pages": None,
        "retry_failed": False,
        "concurrency": 4,
        "timeout": 20.0,
        "max_depth": 3,
    }
    before = {
        "max_pages": None,
        "max_depth": 3,
        "retry_failed": False,
        "crawl_delay": None,
        "concurrency": 4,
        "timeout": 20.0,
    }
    assert target_key(["u"], "crawl", {"model": "m"}, before) == target_key(
        ["u"], "crawl", {"model": "m"}, batch_options()
    )
    for fetch_only in ("crawl_delay", "dataforseo_timeout", "user_agent", "read_timeout", "retries"):
        assert target_key(["u"], None, {}, {**before, fetch_only: 7}) == target_key(["u"], None, {}, before)
    assert target_key(["u"], None, {}, {**before, "max_depth": 2}) != target_key(["u"], None, {}, before)


def test_a_source_adds_its_option_to_analyze_and_reads_it_from_its_context(extra_sources, tmp_path):
    db = str(tmp_path / "x.duckdb")
    result = CliRunner().invoke(cli, ["analyze", "--source", "shout", "--shout-level", "3", "t", "--db", db])
    assert isinstance(result.exception, UserError), result.output  # check() refused it, before any model load
    assert str(result.exception) == "shout level 3, max_depth 3"
    assert "--shout-level" in CliRunner().invoke(cli, ["analyze", "--help"]).output
    assert target_key(["u"], None, {}, {"shout_level": 3}) == target_key(["u"], None, {}, {})  # declared neutral


def test_a_source_without_the_base_class_still_reads(extra_sources, db_path):
    wrapped = as_source(OldSource())
    assert isinstance(wrapped, Source) and not wrapped.streaming and not wrapped.concurrent_loads
    assert wrapped.estimate("old:x", SourceContext()) is None

    class Engine:
        def sweep(self, text, kind="response"):
            from revprompt.plugins.testing import make_result

            return make_result([f"about {text}"])

    with Store(db_path) as store:
        summary = BatchRunner(store, Engine, {"model": "stub"}, options={"timeout": 5}).run("analyze", ["old:x"])
        docs = {d["uri"]: d for d in store.documents(summary.run_id)}
    assert summary.done == 2 and docs["old:x/1"]["text"] == "old:x/1 at timeout 5"


def test_the_context_reads_like_the_options():
    ctx = SourceContext({"max_pages": 5}, done={"a"})
    assert ctx.get("max_pages") == 5 and ctx["max_pages"] == 5 and dict(ctx) == {"max_pages": 5}
    assert ctx.get("missing") is None and "a" in ctx.done and ctx.stored_meta("a") is None
    plain = {"timeout": 1}
    assert SourceContext.of(plain).options is plain and SourceContext.of(ctx) is ctx
