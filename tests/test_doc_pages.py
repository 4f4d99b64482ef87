"""Page-like pairs from a built documentation site (datagen/doc_pages.py, `revprompt datagen doc-pages`)."""

from __future__ import annotations

import json
import random

from conftest import cli_runner

from revprompt.datagen.doc_pages import pairs_from_site, topic_case, topic_prompt, usable_topic

BODY = (
    "Cargo-like tools resolve dependencies from a manifest file. This paragraph explains what the resolver does, "
    "why lock files exist and how a version requirement is matched against the published releases. "
)


def _page(title: str, *sections: tuple[str, str], lead: str | None = None) -> str:
    lead = lead if lead is not None else f"{len(title)} pages in. " + BODY * 3
    parts = [f"<h2>{heading}</h2><p>{text}</p>" for heading, text in sections]
    return (
        f"<html><head><title>{title} - Example docs</title></head><body>"
        f'<div class="sidebar"><ul><li><a href="a.html">Home</a></li></ul></div>'
        f'<div role="main"><h1>{title}<a class="headerlink" href="#x">\u00b6</a></h1><p>{lead}</p>'
        f"{''.join(parts)}</div></body></html>"
    )


def _site(tmp_path):
    site = tmp_path / "html" / "toolkit"
    (site / "guide").mkdir(parents=True)
    (site / "_static").mkdir()
    (site / "resolver.html").write_text(
        _page(
            "Dependency Resolution",
            ("Lock Files and Reproducible Builds", "A lock file records versions. " + BODY * 3),
            ("Overview", "In short. " + BODY * 3),  # a generic heading: no pair of its own
            ("Short", "too short to be a page"),
        ),
        encoding="utf-8",
    )
    (site / "guide" / "install.html").write_text(_page("Installing the Toolkit"), encoding="utf-8")
    (site / "genindex.html").write_text(_page("Index"), encoding="utf-8")
    (site / "_static" / "x.html").write_text(_page("Static Copy"), encoding="utf-8")
    (site / "changelog.html").write_text(_page("Changelog"), encoding="utf-8")
    (site / "stub.html").write_text(_page("A Stub", lead="Only a line."), encoding="utf-8")
    return site


def test_pairs_from_a_site(tmp_path):
    site = _site(tmp_path)
    pairs = list(pairs_from_site(site, "Toolkit"))
    assert [(p.title, p.file) for p in pairs] == [
        ("Installing the Toolkit", "guide/install.html"),
        ("Dependency Resolution", "resolver.html"),
        ("Lock Files and Reproducible Builds", "resolver.html"),
    ]
    page = pairs[1]
    # the page is read as any web page is, with the heading that repeats the title removed
    assert "Dependency Resolution" not in page.response
    assert page.response.startswith("21 pages in. Cargo-like tools resolve")
    assert "## Lock Files and Reproducible Builds" in page.response
    assert "Home" not in page.response  # navigation is not content
    section = pairs[2]
    assert section.response.startswith("A lock file records") and "Overview" not in section.response
    for pair in pairs:
        assert pair.source == "docs:Toolkit"
        assert pair.title.lower().split()[-1] in pair.prompt.lower()
    # every prompt asks for the title's topic; the same seed gives the same prompts
    assert all(p.title[1:].lower() in p.prompt.lower() for p in pairs)
    assert [p.prompt for p in pairs_from_site(site, "Toolkit")] == [p.prompt for p in pairs]


def test_topic_prompt_shapes():
    rng = random.Random(0)
    seen = "Rust lets a program use trait objects for values of different types."
    verbs = {topic_prompt("Working with Environment Variables", "Rust", rng, seen) for _ in range(40)}
    assert all("working with environment variables" in v for v in verbs)
    assert not any(v.startswith("What is") for v in verbs)  # no "What is working with ..."
    nouns = {topic_prompt("Trait Objects", "Rust", rng, seen) for _ in range(60)}
    assert len(nouns) >= 5 and all("trait objects" in v for v in nouns)
    assert any(" in Rust" in v for v in nouns) and any("Rust" not in v for v in nouns)
    # a project the text the model reads never names is never in the prompt: it could only be guessed
    unseen = {
        topic_prompt("Trait Objects", "Rust", rng, "Values of different types behind one pointer.") for _ in range(60)
    }
    assert not any("Rust" in v for v in unseen)
    late = "Values of different types. " * 40 + "Rust"  # named only beyond what the model reads
    assert not any("Rust" in topic_prompt("Trait Objects", "Rust", rng, late) for _ in range(30))
    assert topic_prompt("How to Write Tests", "Rust", random.Random(1)).count("ow to write tests") == 1
    assert all(p.endswith("?") for p in (topic_prompt("Why is the API that way?", "X", rng) for _ in range(10)))


def test_topic_case_lowers_title_case_but_keeps_names_and_code():
    text = "Since Django 4.2 you can subclass an abstract class; the view uses CMAC. Ask Django for help."
    assert topic_case("Abstract Base Classes", text) == "abstract base classes"
    assert topic_case("Testing Django Views", text) == "testing Django views"  # a name the text capitalises
    assert topic_case("The WebSupport class and CMAC", text) == "the WebSupport class and CMAC"
    assert topic_case("Using `Vec<T>` in Rust", "", keep="Rust") == "using `Vec<T>` in Rust"
    assert topic_case("Why Do I Need It?") == "why do I need it?"


def test_titles_that_name_no_topic():
    assert usable_topic("Dependency Resolution")
    assert usable_topic("How to use fixtures?")
    for title in (
        "Overview",
        "Introduction",
        "Changelog",
        "3.1.0",
        "What's new in 2.0",
        "Pillow 11.0.0",
        "Index",
        "How to use it?",
        "What is this?",
    ):
        assert not usable_topic(title), title


def test_doc_pages_command(tmp_path, monkeypatch, capsys):
    run = cli_runner(monkeypatch, capsys, lambda: None)  # no model: datagen reads HTML only
    site = _site(tmp_path)
    twin = tmp_path / "html" / "mirror"
    twin.mkdir()
    (twin / "same.html").write_text((site / "resolver.html").read_text(encoding="utf-8"), encoding="utf-8")
    out = tmp_path / "docs.jsonl"
    code, output, err = run("datagen", "doc-pages", site, twin, "-o", out, "--name", "toolkit=Toolkit")
    assert code == 0, err
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 3  # the mirror's copy of resolver.html starts like the original: dropped
    assert {r["source"] for r in rows} == {"docs:Toolkit"}
    assert set(rows[0]) == {"prompt", "response", "source", "title", "file", "kind"}
    assert {r["kind"] for r in rows} == {"page"}
    assert "2 repeated starts dropped" in output

    code, output, err = run("datagen", "doc-pages", site, "-o", out, "--name", "toolkit")
    assert code != 0 and "FOLDER=NAME" in err
