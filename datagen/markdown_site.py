"""Markdown documentation (MkDocs, Hugo, Docusaurus, VitePress, Jekyll, Obsidian) rendered to a folder of HTML
pages that `datagen/doc_pages.py` reads like any built site.

Why: the doc-page pairs came only from Sphinx sites of Python projects (docs/model.md §17–§23), and the page
adapter stopped improving on them. Most documentation on the web is written in Markdown by other communities
(JavaScript tools, PHP frameworks, self-hosted apps, help centres), and its sources sit in git. This module does
what those sites' generators do to the text, and nothing more: it reads the page title from the front matter
(or the first `# ` heading), drops the generator's own syntax (front matter, MDX imports and exports, Hugo
shortcodes, Liquid tags, `:::` containers, Obsidian embeds, MyST labels) and renders the rest with markdown-it, so the page
then goes through the same extraction (`sources.extract.extract_page`) as a page fetched from the web.
Component tags are kept as HTML; extraction drops the tags and keeps their text, as it does on real pages.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Iterable
from pathlib import Path

import yaml

from ..core.errors import UserError

SKIP_NAMES = re.compile(r"^(readme|changelog|changes|history|license|contributing|code_of_conduct|security)\b", re.I)
FRONT_MATTER = re.compile(r"\A(?:---|\+\+\+)\s*\n(.*?)\n(?:---|\+\+\+)\s*(?:\n|\Z)", re.S)
_DROP_LINE = re.compile(
    r"^\s*(?:import\s.+\sfrom\s.+|import\s+['\"].+|export\s+(?:const|default|function|let)\b.*|:::.*|"
    r"\{\{[<%].*[>%]\}\}|\{%.*%\}|!\[\[.*\]\]|\([\w.:-]+\)=)\s*$"
)
_SHORTCODE = re.compile(r"\{\{[<%].*?[>%]\}\}|\{%.*?%\}|\{\{.*?\}\}")
_WIKILINK = re.compile(r"!?\[\[([^\]|#]*)(?:#[^\]|]*)?(?:\|([^\]]*))?\]\]")
_HEADING_ID = re.compile(r"\s*\{#[\w-]+\}\s*$")
_MDX_COMMENT = re.compile(r"\s*\{/\*.*?\*/\}")


def front_matter(text: str) -> tuple[dict, str]:
    """(the page's front matter as a dict, the text after it). YAML (`---`) is read; TOML (`+++`) and broken
    YAML give an empty dict, so the page falls back to its first heading for a title."""
    m = FRONT_MATTER.match(text)
    if not m:
        return {}, text
    meta: dict = {}
    if text.startswith("---"):
        try:
            loaded = yaml.safe_load(m.group(1))
            meta = loaded if isinstance(loaded, dict) else {}
        except yaml.YAMLError:
            meta = {}
    else:
        t = re.search(r"^title\s*=\s*[\"'](.+?)[\"']\s*$", m.group(1), re.M)
        meta = {"title": t.group(1)} if t else {}
    return meta, text[m.end() :]


def clean_markdown(body: str) -> str:
    """The page's Markdown without the generator's syntax (see the module docstring); code blocks untouched."""
    out, fence = [], None
    for line in body.splitlines():
        stripped = line.lstrip()
        if fence:
            out.append(line)
            if stripped.startswith(fence):
                fence = None
            continue
        if stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
            out.append(line)
            continue
        if _DROP_LINE.match(line):
            continue
        line = _SHORTCODE.sub("", _MDX_COMMENT.sub("", line))
        line = _WIKILINK.sub(lambda m: "" if m.group(0).startswith("!") else (m.group(2) or m.group(1)), line)
        if stripped.startswith("#"):
            line = _HEADING_ID.sub("", line)
        out.append(line)
    return "\n".join(out)


def page_html(text: str, fallback_title: str | None = None) -> tuple[str | None, str]:
    """(title, HTML page) of one Markdown source; title None when the page has none to give. `fallback_title`
    serves pages whose title is only their file name (Obsidian's help pages)."""
    from markdown_it import MarkdownIt

    meta, body = front_matter(text)
    body = clean_markdown(body)
    title = meta.get("title") if isinstance(meta.get("title"), str) else None
    first = re.search(r"^#\s+(.+?)\s*#*\s*$", body, re.M)
    if first and (title is None or first.group(1).strip() == title.strip()):
        title = title or first.group(1).strip()
        body = body[: first.start()] + body[first.end() :]  # the heading comes back once, as the <h1>
    title = title or fallback_title
    if not title:
        return None, ""
    title = " ".join(_SHORTCODE.sub("", title).replace("`", "").split())
    rendered = MarkdownIt("commonmark", {"html": True}).enable("table").render(body)
    esc = html_lib.escape(title)
    return title, (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc}</title></head>"
        f"<body><main><h1>{esc}</h1>\n{rendered}</main></body></html>\n"
    )


def markdown_files(src: Path, exclude: Iterable[str] = ()) -> list[Path]:
    """The Markdown pages under `src` (.md, .mdx, .markdown), in path order, less README/changelog-like files
    and any path under a folder named in `exclude`."""
    skip = tuple(e.strip("/") + "/" for e in exclude)
    files = []
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src).as_posix()
        if path.suffix.lower() not in {".md", ".mdx", ".markdown"} or not path.is_file():
            continue
        if (
            SKIP_NAMES.match(path.stem)
            or rel.startswith(skip)
            or any(p.startswith((".", "_")) for p in rel.split("/")[:-1])
        ):
            continue
        files.append(path)
    return files


def render_site(src: Path, out: Path, exclude: Iterable[str] = ()) -> int:
    """Render every Markdown page under `src` into `out` (same relative paths, `.html`); returns pages written.
    Pages without a title are skipped: doc_pages would skip them anyway."""
    if not src.is_dir():
        raise UserError(f"not a folder of Markdown pages: {src}")
    written = 0
    for path in markdown_files(src, exclude):
        stem = path.stem.replace("_", " ").strip()
        stem = stem if " " in stem else stem.replace("-", " ")
        fallback = stem if re.search(r"[A-Za-z]{3}", stem) and stem.lower() not in {"index", " index"} else None
        title, page = page_html(path.read_text(encoding="utf-8", errors="replace"), fallback)
        if not title:
            continue
        target = out / path.relative_to(src).with_suffix(".html")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(page, encoding="utf-8")
        written += 1
    return written
