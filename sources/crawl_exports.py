"""`--urls` files that are another crawler's export: Screaming Frog's "Internal - HTML" CSV and advertools' crawl
JSON Lines. `read_url_list` (web.py) asks `read_crawl_export` first; a plain list of URLs is not an export and
is read as before.

Formats, as their tools write them:

* **Screaming Frog SEO Spider**, Internal tab, filter HTML, Export (`internal_html.csv`): UTF-8 with a BOM,
  every cell quoted, a header row that starts `"Address","Content Type","Status Code","Status","Indexability",
  "Indexability Status","Title 1",...` (column names as in published exports, e.g. the Response Codes and
  Internal exports quoted in public SEO tooling; `Indexability` is `Indexable` or `Non-Indexable`). Only
  Indexable rows are analysed: a page that is noindexed, canonicalised elsewhere, redirected or blocked is not
  a page that should answer a search. Without an Indexability column (another tab's export) every Address is
  taken.
* **advertools** `adv.crawl(url_list, "crawl.jl")`: one JSON object per line with `url`, `title`, `meta_desc`,
  `h1`, `body_text`, `status`, `crawl_time`, ... (the field names of advertools' own example crawl,
  `advertools/code_recipes/example_crawl_1.jl`, and its spider). A line with `body_text` becomes a ready
  document with that text (title and meta description kept), so the page is not fetched again; a line without
  it is an URL to fetch like any other.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..core.types import Document
from .fetch import ParamRules, normalize_url, url_problem
from .tabular import find_column, head_text, parse_csv, read_text, shown_columns

log = logging.getLogger("revprompt.sources.crawl_exports")

SCREAMING_FROG = "screaming_frog"
ADVERTOOLS = "advertools"

SF_ADDRESS = ("Address",)
SF_INDEXABILITY = ("Indexability",)
SF_TITLE = ("Title 1",)
INDEXABLE = "indexable"


def export_kind(path: str) -> str | None:
    """Which crawler export `path` is (SCREAMING_FROG, ADVERTOOLS), or None for anything else (a URL list)."""
    head = head_text(path)
    first = next((line for line in head.splitlines() if line.strip()), "").strip().lstrip("\ufeff")
    if not first:
        return None
    if first.startswith("{"):
        try:  # the whole first line: an advertools line holds the page's text and is often longer than the head
            obj = json.loads(_first_line(path))
        except ValueError:
            return None
        return ADVERTOOLS if isinstance(obj, dict) and "url" in obj else None
    if "://" in first.split(",")[0]:
        return None  # a URL list whose first line is a URL
    header, _, _ = _header_only(first)
    return SCREAMING_FROG if find_column(header, SF_ADDRESS) is not None else None


def _first_line(path: str, limit: int = 64 * 1024 * 1024) -> str:
    from pathlib import Path

    try:
        with open(Path(path).expanduser(), "rb") as fh:
            for raw in fh:
                line = raw[:limit].decode("utf-8", errors="replace").lstrip("\ufeff").strip()
                if line:
                    return line
    except OSError:
        pass
    return ""


def _header_only(line: str):
    try:
        return parse_csv(line, "header")
    except Exception:  # noqa: BLE001 - only sniffing
        return [], [], ","


def read_crawl_export(
    target: str, source: str, options: Mapping[str, Any] | None = None
) -> list[str | Document] | None:
    """The pages of a crawler export, or None when `target` is not one (stdin, a plain URL list)."""
    if target == "-":
        return None
    kind = export_kind(target)
    if kind == SCREAMING_FROG:
        return read_screaming_frog(target, source, options)
    if kind == ADVERTOOLS:
        return read_advertools(target, source, options)
    return None


def _url_or_failure(url: str, source: str, rules: ParamRules) -> str | Document:
    problem = url_problem(url)
    if problem is None:
        return normalize_url(url, rules)
    return Document(uri=url[:2000], source=source).failed(problem)


def read_screaming_frog(path: str, source: str, options: Mapping[str, Any] | None = None) -> list[str | Document]:
    from ..core.errors import UserError

    rules = ParamRules.from_options(options or {})
    header, rows, _ = parse_csv(read_text(path, "Screaming Frog export"), path)
    address = find_column(header, SF_ADDRESS)
    if address is None:
        raise UserError(
            f"{path}: no 'Address' column (found: {shown_columns(header)}); export Screaming Frog's "
            "Internal tab (filter: HTML) with Export"
        )
    indexability = find_column(header, SF_INDEXABILITY)
    items: list[str | Document] = []
    skipped = 0
    for row in rows:
        url = row[address].strip() if address < len(row) else ""
        if not url:
            continue
        if indexability is not None:
            value = row[indexability].strip().lower() if indexability < len(row) else ""
            if value != INDEXABLE:
                skipped += 1
                continue
        items.append(_url_or_failure(url, source, rules))
    if skipped:
        log.warning("%s: %d non-indexable rows left out", path, skipped)
    if not items:
        raise UserError(
            f"{path} lists no indexable page (Screaming Frog export: {len(rows)} rows, {skipped} not Indexable)"
        )
    return items


def read_advertools(path: str, source: str, options: Mapping[str, Any] | None = None) -> list[str | Document]:
    from ..core.errors import UserError

    rules = ParamRules.from_options(options or {})
    items: list[str | Document] = []
    for n, line in enumerate(read_text(path, "advertools crawl file").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise UserError(
                f"{path}, line {n}: not a JSON object ({exc.msg if isinstance(exc, json.JSONDecodeError) else exc}); advertools writes one per line"
            ) from None
        if not isinstance(row, dict):
            raise UserError(f"{path}, line {n}: not a JSON object; advertools writes one per line")
        url = row.get("url")
        if not isinstance(url, str) or not url.strip():
            raise UserError(
                f"{path}, line {n}: no 'url' field (advertools crawl lines have url, title, body_text, ...)"
            )
        item = _url_or_failure(url.strip(), source, rules)
        text = row.get("body_text")
        if isinstance(item, str) and isinstance(text, str) and text.strip():
            item = Document(
                uri=item,
                text=text.strip(),
                title=_text(row.get("title")),
                description=_text(row.get("meta_desc")),
                source=source,
                http_status=_int(row.get("status")),
                fetched_at=_time(row.get("crawl_time")),
                meta={"from": ADVERTOOLS},
            )
        items.append(item)
    if not items:
        raise UserError(f"{path} holds no crawled page")
    return items


def _text(value) -> str | None:
    # advertools joins repeated elements (several h1s, titles) with '@@'
    if isinstance(value, str) and value.strip():
        return value.split("@@")[0].strip()
    return None


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _time(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        return None
