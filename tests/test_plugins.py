"""Plugins: built-ins through the hooks, `revprompt plugins`, and a third-party plugin found by its entry point.

The sample plugin (tests/fixtures/sample_plugin) is pip-installed into a temporary folder, never into the venv:
subprocesses see it through PYTHONPATH, the in-process test through sys.path, and nothing outlives the test
(fixtures `sample_plugin_dir` and `sample_on_path` in conftest.py; tests/test_views.py shows its TUI tab).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from revprompt.core import analyzers as runner
from revprompt.core.cli import main
from revprompt.core.plugin_manager import get_plugin_manager
from revprompt.core.store import Store
from revprompt.plugins.testing import make_result

SAMPLE_MODULE = "revprompt_sample_plugin"


def run_cli(*args):
    try:
        main(list(args))
    except SystemExit as exc:
        return exc.code
    return 0


def revprompt(*args, pythonpath: str | None = None):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return subprocess.run(
        [sys.executable, "-m", "revprompt", *args], capture_output=True, text=True, env=env, timeout=120
    )


def inventory(output: str) -> dict:
    return {e["plugin"]: e for e in map(json.loads, output.splitlines())}


def test_builtins_register_through_the_hooks(capsys):
    assert run_cli("plugins", "--json") == 0
    plugins = inventory(capsys.readouterr().out)
    builtin = plugins["revprompt.plugins.builtin"]
    assert builtin["origin"] == "built-in"
    assert {a["name"]: a["tables"] for a in builtin["analyzers"]} == {
        "key_phrases": ["key_phrases"],
        "word_frequency": ["word_frequencies"],
        "site_intent": ["intent_clusters", "cannibalisation_pairs", "prompt_embeddings"],
    }
    assert plugins["revprompt.plugins.commands"]["commands"] == ["consistency", "export", "plugins", "report"]
    assert SAMPLE_MODULE not in json.dumps(plugins)

    assert run_cli("plugins") == 0
    text = capsys.readouterr().out
    assert "revprompt.plugins.builtin  (built-in)" in text
    assert "[tables: intent_clusters, cannibalisation_pairs, prompt_embeddings]" in text


def test_third_party_plugin_is_listed_through_its_entry_point(sample_plugin_dir):
    proc = revprompt("plugins", "--json", pythonpath=str(sample_plugin_dir))
    assert proc.returncode == 0, proc.stderr
    sample = inventory(proc.stdout)["sample"]  # the entry point's name
    assert sample["origin"] == "revprompt-sample-plugin 0.1.0"
    assert sample["analyzers"][0]["name"] == "sample_prompt_lengths"
    assert sample["analyzers"][0]["tables"] == ["sample_prompt_lengths", "sample_run_summary"]
    assert sample["commands"] == ["sample-hello"]

    hello = revprompt("sample-hello", pythonpath=str(sample_plugin_dir))
    assert hello.returncode == 0 and hello.stdout.strip() == "hello from revprompt-sample-plugin"

    # not installed: not loaded (nothing imports it directly)
    plain = revprompt("plugins", "--json")
    assert plain.returncode == 0 and "sample" not in inventory(plain.stdout)


class StubEngine:
    def sweep(self, text, kind="response"):
        return make_result([f"{text} question", f"what about {text}?"])


def test_third_party_analyzer_fills_its_table_in_a_batch(sample_on_path, db_path):
    from revprompt.core.batch import BatchRunner

    pm = get_plugin_manager()
    assert "sample" in dict(pm.list_name_plugin())
    assert [d.project_name for _, d in pm.list_plugin_distinfo()] == ["revprompt-sample-plugin"]
    analyzers = runner.registered_analyzers()
    names = [a.name for a in analyzers]
    assert {"key_phrases", "word_frequency", "site_intent", "sample_prompt_lengths"} <= set(names)
    sample_only = [a for a in analyzers if a.name == "sample_prompt_lengths"]

    with Store(db_path) as store:
        summary = BatchRunner(store, StubEngine, {"model": "stub"}, analyzers=sample_only).run(
            "analyze", ["apples", "pears"]
        )
        assert summary.done == 2
        _, rows = store.query(
            "SELECT d.text, c.prompt, s.n_chars, s.n_words, s.run_id FROM sample_prompt_lengths s "
            "JOIN candidates c USING (candidate_id) JOIN documents d ON d.doc_id = s.doc_id ORDER BY c.candidate_id"
        )
        assert [(t, p, n, w) for t, p, n, w, _ in rows] == [
            ("apples", "apples question", 15, 2),
            ("apples", "what about apples?", 18, 3),
            ("pears", "pears question", 14, 2),
            ("pears", "what about pears?", 17, 3),
        ]
        assert {r[4] for r in rows} == {summary.run_id}
        _, summary_rows = store.query("SELECT run_id, n_documents, mean_chars FROM sample_run_summary")
        assert summary_rows == [(summary.run_id, 2, 16.0)]
