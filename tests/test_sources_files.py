"""Text, stdin and local-file sources (no network, no model)."""

from __future__ import annotations

import io
import sys

import pytest

from revprompt.core.errors import UserError
from revprompt.sources.text import FileSource, TextSource, text_uri


def test_folder_is_every_readable_file_and_html_becomes_markdown(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.md").write_text("# Notes\n\nSome markdown text.")
    (tmp_path / "sub" / "b.html").write_text(
        "<html><head><title>Page B</title><meta name='description' content='About B.'></head>"
        "<body><article><h1>Heading B</h1><p>Paragraph about the second file, long enough to keep.</p>"
        "</article></body></html>"
    )
    (tmp_path / "c.txt").write_bytes("caf\xe9 au lait".encode("cp1252"))
    (tmp_path / "image.png").write_bytes(b"\x89PNG\x00\x00")
    source = FileSource()
    assert source.claims(str(tmp_path), {})
    uris = list(source.discover(str(tmp_path), {}))
    assert [u.rsplit("/", 1)[-1] for u in uris] == ["a.md", "c.txt", "b.html"]
    docs = {u.rsplit("/", 1)[-1]: source.load(u, {}) for u in uris}
    assert docs["a.md"].text.startswith("# Notes") and docs["a.md"].title == "a.md"
    b = docs["b.html"]
    assert b.title == "Page B" and b.description == "About B." and "# Heading B" in b.text and "<p>" not in b.text
    assert docs["c.txt"].text == "café au lait"


def test_file_failures_are_documents(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n")
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"abc\x00def")
    source = FileSource()
    assert source.load(str(empty), {}).error.endswith("is empty")
    assert "looks binary" in source.load(str(binary), {}).error
    (tmp_path / "nothing").mkdir()
    with pytest.raises(UserError, match="holds no .txt, .md or .html files"):
        list(source.discover(str(tmp_path / "nothing"), {}))


def test_text_and_stdin(monkeypatch):
    (doc,) = TextSource().discover("Pasted words about bread.", {})
    assert doc.uri == text_uri("Pasted words about bread.") and doc.source == "text"
    fake = io.TextIOWrapper(io.BytesIO(b"From a pipe.\n"))
    monkeypatch.setattr(sys, "stdin", fake)
    (doc,) = TextSource().discover("-", {})
    assert doc.source == "stdin" and doc.text == "From a pipe.\n"
    with pytest.raises(UserError, match="is empty"):
        list(TextSource().discover("   ", {}))


class KindRecorder:
    """A stand-in engine with sweep() only (a third-party engine): notes the kind the batch hands each text."""

    batch_docs = 1

    def __init__(self):
        self.kinds: dict[str, str] = {}

    def sweep(self, text, kind="response"):
        from revprompt.plugins.testing import make_result

        self.kinds[text.split()[0]] = kind
        return make_result([("What is this text about?", 2.0)])


class GroupKindRecorder(KindRecorder):
    """The same, taking a group in one call as the real engine does."""

    batch_docs = 8

    def sweep_many(self, texts, batch_docs=None, kinds=None):
        for i, text in enumerate(texts):
            yield i, self.sweep(text, kinds[i])


def _answer_and_page(folder):
    """A markdown answer and an HTML page in `folder`, each text starting with a word naming what it is."""
    (folder / "answer.md").write_text("Markdown answer about sleeping well and keeping a regular bedtime.")
    (folder / "page.html").write_text(
        "<html><head><title>Vectors</title></head><body><article><p>Webpage text about vectors in Rust, "
        "long enough for the extractor to keep it as the main content.</p></article></body></html>"
    )


@pytest.mark.parametrize("engine_class", [KindRecorder, GroupKindRecorder])
def test_batch_tells_the_engine_pages_from_responses(tmp_path, engine_class):
    """Pasted text and .md/.txt files are analysed as assistant responses, .html files as web pages; the
    batch passes each document's kind to the engine, which ranks junk by it (core/junk.py DEMOTED_REASONS)."""
    from revprompt.core.batch import BatchRunner
    from revprompt.core.store import Store

    _answer_and_page(tmp_path)
    (tmp_path / "notes.txt").write_text("Plain notes on brewing coffee with a paper filter at home.")
    engine = engine_class()
    with Store(str(tmp_path / "r.duckdb")) as store:
        batch = BatchRunner(store, lambda: engine, {"model": engine_class.__name__}, analyzers=[])
        summary = batch.run("analyze", ["Pasted answer about tea and how long to steep it.", str(tmp_path)])
    assert summary.done == 4
    assert engine.kinds == {"Pasted": "response", "Markdown": "response", "Plain": "response", "Webpage": "page"}


@pytest.mark.parametrize("forced", ["page", "response"])
def test_analyze_kind_option_overrides_every_document(tmp_path, forced):
    """`analyze --kind page|response` (the batch option "kind") sets the kind of every document."""
    from revprompt.core.batch import BatchRunner
    from revprompt.core.store import Store

    _answer_and_page(tmp_path)
    engine = GroupKindRecorder()
    with Store(str(tmp_path / "r.duckdb")) as store:
        batch = BatchRunner(store, lambda: engine, {"model": "kinds"}, analyzers=[], options={"kind": forced})
        summary = batch.run("analyze", ["Pasted answer about tea and how long to steep it.", str(tmp_path)])
    assert summary.done == 3
    assert set(engine.kinds.values()) == {forced} and len(engine.kinds) == 3
