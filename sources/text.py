"""Pasted text, stdin and local files: the sources that need no network."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from revprompt.core.errors import UserError
from revprompt.core.types import Document, utcnow

TEXT_EXTENSIONS = {".txt", ".md", ".markdown", ".text", ".rst"}
HTML_EXTENSIONS = {".html", ".htm", ".xhtml"}
MAX_FILE_BYTES = 20 * 1024 * 1024


def text_uri(text: str) -> str:
    return "text:" + hashlib.sha1(text.encode("utf-8", "replace")).hexdigest()[:16]


def check_text(text: str, what: str) -> str:
    """Reject what the model cannot read: empty, whitespace-only or binary input."""
    if "\x00" in text:
        raise UserError(f"{what} looks binary (contains NUL bytes); give revprompt text, markdown or HTML")
    if not text.strip():
        raise UserError(f"{what} is empty")
    return text


def decode_bytes(data: bytes, what: str) -> str:
    if b"\x00" in data[:8192]:
        raise UserError(f"{what} looks binary (contains NUL bytes); give revprompt text, markdown or HTML")
    for encoding in ("utf-8", "utf-16") if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ("utf-8",):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            pass
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # Legacy pages and files: cp1252 decodes any byte string and is what such files usually are.
        text = data.decode("cp1252", errors="replace")
    return text


class TextSource:
    name = "text"
    description = "Text given on the command line, or '-' for standard input"

    def claims(self, target: str, options: dict) -> bool:
        return True  # the last resort: anything that is not a file, URL or other target is text

    def discover(self, target: str, options: dict):
        if target == "-":
            data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
            text = check_text(decode_bytes(data, "standard input"), "standard input")
            yield Document(uri=text_uri(text), text=text, source="stdin", fetched_at=utcnow())
            return
        text = check_text(target, "the text")
        yield Document(uri=text_uri(text), text=text, source="text", fetched_at=utcnow())

    def load(self, uri: str, options: dict) -> Document:  # pragma: no cover - discover yields Documents
        raise UserError(f"{uri} cannot be re-read: pasted text is stored with its document")


def html_to_markdown(html: str) -> tuple[str, str | None, str | None]:
    """(markdown, title, description) of an HTML page: trafilatura's main content, markdownify as fallback."""
    from .extract import extract_page

    page = extract_page(html)
    return page.markdown, page.title, page.description


class FileSource:
    name = "file"
    description = "Local .txt/.md/.html files, or a folder of them"

    def claims(self, target: str, options: dict) -> bool:
        return target != "-" and "\n" not in target and len(target) < 4096 and Path(target).expanduser().exists()

    def discover(self, target: str, options: dict):
        path = Path(target).expanduser()
        if path.is_dir():
            files = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_EXTENSIONS | HTML_EXTENSIONS
            )
            if not files:
                raise UserError(f"{path} holds no .txt, .md or .html files")
            for p in files:
                yield str(p.resolve())
        else:
            yield str(path.resolve())

    def load(self, uri: str, options: dict) -> Document:
        path = Path(uri)
        doc = Document(uri=uri, source="file", fetched_at=utcnow(), title=path.name)
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                return doc.failed(f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
            text = decode_bytes(path.read_bytes(), str(path))
            if path.suffix.lower() in HTML_EXTENSIONS:
                text, title, description = html_to_markdown(text)
                doc.title = title or doc.title
                doc.description = description
            doc.text = check_text(text, str(path))
        except UserError as exc:
            return doc.failed(str(exc))
        except OSError as exc:
            return doc.failed(f"cannot read {path}: {exc.strerror or exc}")
        return doc
