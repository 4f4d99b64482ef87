"""Pasted text, stdin and local files: the sources that need no network."""

from __future__ import annotations

import codecs
import hashlib
import logging
import os
import sys
from pathlib import Path

from ..core.errors import UserError
from ..core.types import Document, utcnow
from .base import Source, SourceContext

TEXT_EXTENSIONS = {".txt", ".md", ".markdown", ".text", ".rst"}
HTML_EXTENSIONS = {".html", ".htm", ".xhtml"}
MAX_FILE_BYTES = 20 * 1024 * 1024
# A single word ending like this was meant as a file: a missing one is a typo to report, not text to analyse.
FILE_LIKE_EXTENSIONS = TEXT_EXTENSIONS | HTML_EXTENSIONS | {".xml", ".gz", ".json", ".csv", ".pdf", ".doc", ".docx"}
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))

log = logging.getLogger("revprompt.sources.text")


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
    """Text of a file or stdin: a byte-order mark says the encoding (UTF-16 is what Windows editors and
    PowerShell write, and its every other byte is NUL, so the BOM is read before the binary check), else UTF-8,
    else cp1252."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            text = data.decode(codec, errors="replace")
            if "\x00" in text[:8192]:
                break  # a BOM in front of binary data
            return text
    if b"\x00" in data[:8192]:
        raise UserError(f"{what} looks binary (contains NUL bytes); give revprompt text, markdown or HTML")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # Legacy pages and files: cp1252 decodes any byte string and is what such files usually are.
        text = data.decode("cp1252", errors="replace")
    return text


def read_stdin() -> str:
    """Standard input as text, checked like any text (`revprompt analyze -` reads it before the run opens, so
    a piped text is keyed by what it says, as a pasted one is)."""
    data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
    return check_text(decode_bytes(data, "standard input"), "standard input")


class TextSource(Source):
    name = "text"
    description = "Text given on the command line, or '-' for standard input"

    def claims(self, target: str, options: SourceContext) -> bool:
        return True  # the last resort: anything that is not a file, URL or other target is text

    def check(self, target: str, options: SourceContext) -> None:
        """Refuse a single word that was meant as a file or a URL: a typo must not be analysed as text."""
        problem = not_text_reason(target)
        if problem:
            raise UserError(problem)

    def discover(self, target: str, options: SourceContext):
        if target == "-":
            text = read_stdin()
            yield Document(uri=text_uri(text), text=text, source="stdin", fetched_at=utcnow())
            return
        text = check_text(target, "the text")
        yield Document(uri=text_uri(text), text=text, source="text", fetched_at=utcnow())

    def load(self, uri: str, options: SourceContext) -> Document:  # pragma: no cover - discover yields Documents
        raise UserError(f"{uri} cannot be re-read: pasted text is stored with its document")


def not_text_reason(target: str) -> str | None:
    """Why `target`, which no other source claimed, cannot be text meant for analysis, or None.

    Only a single word is judged (text with spaces is always text): with '://' it was meant as a URL
    ('htp://x', 'ftp://...', 'http://[::1/'); with a '/' or a file extension (.md, .txt, .html, ...) as a file
    that does not exist (a file that exists is claimed by the file source before this is asked).
    """
    from .fetch import url_problem

    word = target.strip()
    if target == "-" or not word or any(c.isspace() for c in word):
        return None
    if "://" in word:
        problem = url_problem(word)
        if problem is None:
            return None
        prefix = "malformed URL ("
        why = (
            "malformed: " + problem[len(prefix) : -1]
            if problem.startswith(prefix)
            else "revprompt fetches http:// and https:// URLs"
        )
        return f"not a URL: {word} ({why})"
    if "/" in word or "\\" in word or word.startswith("~") or Path(word).suffix.lower() in FILE_LIKE_EXTENSIONS:
        return f"no such file: {word}"
    return None


def html_to_markdown(html: str) -> tuple[str, str | None, str | None]:
    """(markdown, title, description) of an HTML page: trafilatura's main content, markdownify as fallback."""
    from .extract import extract_page

    page = extract_page(html)
    return page.markdown, page.title, page.description


def folder_files(folder: Path) -> list[str]:
    """The .txt/.md/.html files under `folder`, resolved, in path order.

    Symbolic links are followed only where they stay inside the folder: a link to ~/.ssh or /etc in a folder
    someone hands over must not have those files analysed and stored. Linked folders are not descended into.
    """
    root = folder.resolve()
    found: list[tuple[str, str]] = []
    for dirpath, _dirs, names in os.walk(folder, followlinks=False):
        for name in names:
            p = Path(dirpath) / name
            if p.suffix.lower() not in TEXT_EXTENSIONS | HTML_EXTENSIONS:
                continue
            try:
                real = p.resolve(strict=True)
            except (OSError, RuntimeError):  # a broken or looping link
                continue
            if real != root and root not in real.parents:
                log.warning("skipping %s: a link to %s, outside %s", p, real, root)
                continue
            if real.is_file():
                found.append((str(p), str(real)))
    return [real for _, real in sorted(found)]


class FileSource(Source):
    name = "file"
    description = "Local .txt/.md/.html files, or a folder of them"

    def claims(self, target: str, options: SourceContext) -> bool:
        # An empty target is not the current folder (Path("") means "."): it is empty text.
        return (
            target != "-"
            and bool(target.strip())
            and "\n" not in target
            and len(target) < 4096
            and Path(target).expanduser().exists()
        )

    def discover(self, target: str, options: SourceContext):
        path = Path(target).expanduser()
        if path.is_dir():
            files = folder_files(path)
            if not files:
                raise UserError(f"{path} holds no .txt, .md or .html files")
            yield from files
        else:
            yield str(path.resolve())

    def load(self, uri: str, options: SourceContext) -> Document:
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
