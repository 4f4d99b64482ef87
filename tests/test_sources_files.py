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
