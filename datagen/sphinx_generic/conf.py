"""Generic Sphinx configuration for building any project's docs to plain HTML (no project extensions).
Roles and directives the sources use that plain Sphinx lacks are registered as generic ones, so their text
survives instead of turning into error markup."""

import os
import re
from collections import defaultdict
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive, directives

project = os.environ.get("DG_PROJECT", "docs")
extensions = ["myst_parser"]
source_suffix = {".rst": "restructuredtext", ".txt": "restructuredtext", ".md": "markdown"}
exclude_patterns = [
    "_build",
    "**/_build",
    "releases",
    "**/releases/**",
    "changelog*",
    "**/changelog/**",
    "changes*",
    "CHANGES*",
    "news*",
    "history*",
    "**/whatsnew/**",
    "**/_*",
    "_*",
    "README*",
    "**/README*",
    "internals/**",
    "spelling_wordlist.txt",
    "requirements*.txt",
    "**/api/**",
    "reference/api*",
]
html_theme = "basic"
suppress_warnings = ["*"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
master_doc = "index"
root_doc = "index"

ANYOPTS = defaultdict(lambda: directives.unchanged)


class Generic(Directive):
    has_content = True
    optional_arguments = 1
    final_argument_whitespace = True
    option_spec = ANYOPTS

    def run(self):
        out = []
        if self.arguments and self.arguments[0].strip():
            p = nodes.paragraph()
            p += nodes.literal(text=self.arguments[0].strip())
            out.append(p)
        if self.content:
            box = nodes.container()
            self.state.nested_parse(self.content, self.content_offset, box)
            out.append(box)
        return out


def generic_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    m = re.match(r"^(.*?)\s*<[^<>]+>$", text, re.S)
    shown = (m.group(1) if m and m.group(1) else text).lstrip("~!")
    return [nodes.literal(rawtext, shown)], []


def setup(app):
    src = Path(app.srcdir)
    roles, dirs = set(), set()
    for f in list(src.rglob("*.rst")) + list(src.rglob("*.txt")):
        try:
            t = f.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        roles.update(re.findall(r"(?<![\w`]):([a-zA-Z][\w.+-]*(?::[\w.+-]+)?):`", t))
        dirs.update(re.findall(r"^\s*\.\.\s+([a-zA-Z][\w:-]*)::", t, re.M))
    from docutils.parsers.rst import roles as droles
    from sphinx.util.docutils import is_directive_registered, is_role_registered

    for r in roles:
        if ":" in r:
            continue
        if (
            r not in droles._roles
            and r not in droles._role_registry
            and not is_role_registered(r)
            and r
            not in {
                "class",
                "func",
                "meth",
                "attr",
                "mod",
                "data",
                "exc",
                "obj",
                "const",
                "ref",
                "doc",
                "term",
                "option",
                "envvar",
                "token",
                "keyword",
                "program",
                "file",
                "samp",
                "command",
                "kbd",
                "abbr",
                "dfn",
                "guilabel",
                "menuselection",
                "mimetype",
                "newsgroup",
                "regexp",
                "pep",
                "rfc",
                "download",
                "numref",
                "any",
                "math",
                "eq",
                "manpage",
                "code",
                "literal",
                "emphasis",
                "strong",
                "sub",
                "sup",
                "title-reference",
                "py:func",
            }
        ):
            app.add_role(r, generic_role)
    for d in dirs:
        if ":" in d:
            continue
        if (
            d not in directives._directives
            and d not in directives._directive_registry
            and not is_directive_registered(d)
            and d
            not in {
                "function",
                "class",
                "method",
                "attribute",
                "data",
                "exception",
                "module",
                "currentmodule",
                "decorator",
                "decoratormethod",
                "classmethod",
                "staticmethod",
                "program",
                "option",
                "cmdoption",
                "envvar",
                "glossary",
                "productionlist",
                "describe",
                "object",
                "toctree",
                "code-block",
                "sourcecode",
                "literalinclude",
                "versionadded",
                "versionchanged",
                "deprecated",
                "versionremoved",
                "seealso",
                "centered",
                "hlist",
                "only",
                "index",
                "tabularcolumns",
                "highlight",
                "default-domain",
                "sectionauthor",
                "moduleauthor",
                "codeauthor",
                "acks",
                "property",
                "type",
                "confval",
            }
        ):
            app.add_directive(d, Generic)


html_permalinks = False
