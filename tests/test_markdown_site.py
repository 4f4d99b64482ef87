"""Markdown documentation rendered to HTML pages for doc-page pairs (datagen/markdown_site.py,
`revprompt datagen markdown-site`)."""

from __future__ import annotations

import json

from conftest import cli_runner

from revprompt.datagen.doc_pages import pairs_from_site
from revprompt.datagen.markdown_site import clean_markdown, front_matter, page_html, render_site
from revprompt.sources.extract import extract_page

BODY = (
    "A lock file records the exact version of every dependency, so a build on another machine resolves the "
    "same packages. This paragraph explains when the file is written and why it belongs in version control. "
)


def test_front_matter_yaml_toml_and_broken():
    meta, rest = front_matter("---\ntitle: Content Adapters\nweight: 3\n---\nBody text.\n")
    assert meta == {"title": "Content Adapters", "weight": 3} and rest == "Body text.\n"
    meta, rest = front_matter('+++\ntitle = "Taxonomies"\n+++\nBody.')
    assert meta == {"title": "Taxonomies"} and rest == "Body."
    meta, rest = front_matter("---\ntitle: [unclosed\n---\nBody.")
    assert meta == {} and rest == "Body."
    assert front_matter("# Just a page\n") == ({}, "# Just a page\n")


def test_generator_syntax_is_dropped_and_code_kept():
    source = "\n".join(
        [
            "import Tabs from '@theme/Tabs';",
            "export const meta = {a: 1};",
            "## Install the tool {#install}",
            "## Copying objects {/*copying-objects*/}",
            "{{< note >}}",
            "Read [[Other page|the other page]] and [[Plain]] first. ![[diagram.png]]",
            "{% include links.html %}",
            "(quick_install)=",
            ":::tip",
            "Keep it short {{< ref foo >}}.",
            ":::",
            "```js",
            "import x from 'y';",
            "{% raw %}",
            "```",
        ]
    )
    out = clean_markdown(source)
    assert "@theme/Tabs" not in out and "export const" not in out and ":::" not in out
    assert "## Install the tool\n" in out and "## Copying objects\n" in out
    assert "{{" not in out.split("```")[0] and "{%" not in out.split("```")[0]
    assert "Read the other page and Plain first." in out and "diagram.png" not in out
    assert "Keep it short ." in out and "quick_install" not in out
    # inside a code fence nothing is touched: code is content
    assert "```js\nimport x from 'y';\n{% raw %}\n```" in out


def test_page_html_title_from_front_matter_heading_or_file_name():
    title, page = page_html(f"---\ntitle: Lock Files\n---\n\n# Lock Files\n\n{BODY}\n\n## Why\n\n{BODY}")
    assert title == "Lock Files"
    assert page.count("Lock Files</h1>") == 1  # the body's own `# ` heading is not rendered twice
    assert "<h2>Why</h2>" in page
    text = extract_page(page).markdown
    assert text.startswith("# Lock Files") and "A lock file records" in text

    title, page = page_html(f"# Resolving `Versions`\n\n{BODY}")
    assert title == "Resolving Versions" and "<title>Resolving Versions</title>" in page

    assert page_html(BODY) == (None, "")
    title, page = page_html(BODY, fallback_title="Bases syntax")
    assert title == "Bases syntax" and "<h1>Bases syntax</h1>" in page


def test_render_site_then_doc_pairs(tmp_path):
    src = tmp_path / "docs"
    (src / "guide").mkdir(parents=True)
    (src / "blog").mkdir()
    (src / ".vitepress").mkdir()
    (src / "guide" / "lock-files.md").write_text(f"---\ntitle: Lock Files\n---\n{BODY * 2}", encoding="utf-8")
    (src / "guide" / "workspaces.mdx").write_text(
        f"import X from 'x';\n\n# Managing Workspaces\n\n{BODY * 2}\n\n## Sharing One Lock File\n\n{BODY * 2}",
        encoding="utf-8",
    )
    (src / "blog" / "news.md").write_text(f"# Release News\n\n{BODY * 2}", encoding="utf-8")
    (src / ".vitepress" / "theme.md").write_text(f"# Theme\n\n{BODY}", encoding="utf-8")
    (src / "README.md").write_text(f"# Docs\n\n{BODY}", encoding="utf-8")
    (src / "notes.txt").write_text(BODY, encoding="utf-8")
    out = tmp_path / "html" / "Tool"

    assert render_site(src, out, exclude=["blog"]) == 2
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.html")) == [
        "guide/lock-files.html",
        "guide/workspaces.html",
    ]
    pairs = list(pairs_from_site(out, "Tool"))
    assert [(p.title, p.file) for p in pairs] == [
        ("Lock Files", "guide/lock-files.html"),
        ("Managing Workspaces", "guide/workspaces.html"),
        ("Sharing One Lock File", "guide/workspaces.html"),
    ]
    assert "lock files" in pairs[0].prompt.lower() and pairs[0].response.startswith("A lock file records")
    assert "import X" not in pairs[1].response and "Managing Workspaces" not in pairs[1].response


def test_markdown_site_command(tmp_path, monkeypatch, capsys):
    run = cli_runner(monkeypatch, capsys, lambda: None)  # no model: Markdown to HTML only
    src = tmp_path / "docs"
    src.mkdir()
    (src / "a.md").write_text(f"# Lock Files\n\n{BODY * 2}", encoding="utf-8")
    code, output, err = run("datagen", "markdown-site", src, "-o", tmp_path / "html" / "Tool")
    assert code == 0, err
    assert "1 pages" in output and (tmp_path / "html" / "Tool" / "a.html").is_file()
    code, output, err = run("datagen", "markdown-site", tmp_path / "missing", "-o", tmp_path / "x")
    assert code != 0 and "does not exist" in err
    out = tmp_path / "pairs.jsonl"
    code, output, err = run("datagen", "doc-pages", tmp_path / "html" / "Tool", "-o", out)
    assert code == 0, err
    assert json.loads(out.read_text(encoding="utf-8").splitlines()[0])["title"] == "Lock Files"
