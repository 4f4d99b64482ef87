"""Reading the spreadsheets and exports people hand revprompt (crawler exports, Search Console, keyword lists).

Strict where a guess would silently corrupt data: a file is UTF-8 (with or without a byte-order mark) or UTF-16
with its mark, which is what Google Search Console, Screaming Frog and Excel's "CSV UTF-8" write; anything else
(a Latin-1 or cp1252 re-save, a binary file given by mistake) is refused with a message that says how to export
it again, never decoded into mojibake keywords.

Every problem is a `UserError`: one line, no traceback.
"""

from __future__ import annotations

import codecs
import csv
import io
import sys
from pathlib import Path

from ..core.errors import UserError

MAX_BYTES = 512 * 1024 * 1024
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
ZIP_MAGIC = b"PK\x03\x04"

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # page texts in a crawl export can be long


def read_bytes(path: str | Path, what: str = "file") -> bytes:
    p = Path(path).expanduser()
    try:
        if p.is_dir():
            raise UserError(f"{path} is a directory, not a {what}")
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise UserError(f"{path} is {size / 1e6:.0f} MB; revprompt reads {what}s up to {MAX_BYTES / 1e6:.0f} MB")
        return p.read_bytes()
    except FileNotFoundError:
        raise UserError(f"no such {what}: {path}") from None
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def decode_strict(data: bytes, name: str) -> str:
    """UTF-8 (BOM or not) or BOM-marked UTF-16, else a UserError naming the offending byte."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError as exc:
                raise UserError(f"{name}: not valid {codec.upper()} text ({exc.reason} at byte {exc.start})") from None
            break
    else:
        if data.startswith(ZIP_MAGIC):
            raise UserError(f"{name} is a zip archive, not a text file")
        if b"\x00" in data[:8192]:
            raise UserError(f"{name} looks binary (contains NUL bytes), not a text or CSV file")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = data[exc.start : exc.start + 1].hex()
            raise UserError(
                f"{name} is not UTF-8 text (byte 0x{bad} at offset {exc.start}; it may be Latin-1 or Windows-1252): "
                "save or export it again as UTF-8 (Excel: 'CSV UTF-8')"
            ) from None
    if "\x00" in text[:8192]:
        raise UserError(f"{name} looks binary (contains NUL characters), not a text or CSV file")
    return text


def read_text(path: str | Path, what: str = "file") -> str:
    """A text file, strictly decoded ('-' reads standard input)."""
    if str(path) == "-":
        data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
        return decode_strict(data, "standard input")
    return decode_strict(read_bytes(path, what), str(path))


def head_text(path: str | Path, n_bytes: int = 8192) -> str:
    """The start of a file decoded leniently, only to recognise its format (None-safe: '' when unreadable)."""
    try:
        with open(Path(path).expanduser(), "rb") as fh:
            data = fh.read(n_bytes)
    except OSError:
        return ""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data.decode(codec, errors="replace")
    return data.decode("utf-8", errors="replace")


def normalise_header(name: str) -> str:
    """'Top queries' / 'top_queries' / ' Top  Queries ' -> 'top queries' (BOM and quotes stripped)."""
    name = (name or "").replace("\ufeff", "").strip().strip('"').lower().replace("_", " ")
    return " ".join(name.split())


def sniff_delimiter(first_line: str) -> str:
    """',' unless the header is clearly ';' or tab separated (localised spreadsheet exports use ';')."""
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > counts[","] else ","


def parse_csv(text: str, name: str) -> tuple[list[str], list[list[str]], str]:
    """(header, rows, delimiter) of CSV text; blank lines skipped. A file with no header is a UserError."""
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    if not first:
        raise UserError(f"{name} is empty")
    delimiter = sniff_delimiter(first)
    try:
        reader = csv.reader(io.StringIO(text), delimiter=delimiter)
        rows = [row for row in reader if any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise UserError(f"{name}: not a readable CSV file ({exc})") from None
    if not rows:
        raise UserError(f"{name} is empty")
    return rows[0], rows[1:], delimiter


def find_column(header: list[str], names: set[str] | tuple[str, ...]) -> int | None:
    """Index of the first column whose normalised name is one of `names` (normalised), or None."""
    wanted = {normalise_header(n) for n in names}
    for i, column in enumerate(header):
        if normalise_header(column) in wanted:
            return i
    return None


def shown_columns(header: list[str], limit: int = 8) -> str:
    names = [repr(c.replace("\ufeff", "").strip()) for c in header[:limit]]
    return ", ".join(names) + (", ..." if len(header) > limit else "")
