"""The beam search beside the contrastive sweep: `--beams` chooses its width (0: the original 24 configurations
alone), the run key and the eval details record it, and the store and the outputs label its candidates."""

from __future__ import annotations

import json

from revprompt.core.engine import Engine
from revprompt.core.store import Store
from revprompt.core.types import DEFAULT_BEAM, DEFAULT_SWEEP, Document, config_label, sweep_configs

TEXT = "To bake sourdough bread you need flour, water, salt and an active starter. Mix, fold, proof, bake."


def test_sweep_configs_and_labels():
    assert sweep_configs(0) == DEFAULT_SWEEP
    wide = sweep_configs(6)
    assert wide[:24] == DEFAULT_SWEEP and wide[24].beams == 6 and wide[24].top_k == 12
    assert DEFAULT_BEAM.label == "beam=4" and DEFAULT_SWEEP[0].label == "k=2,a=0.1"
    assert config_label(json.dumps([DEFAULT_BEAM.as_dict(), DEFAULT_SWEEP[0].as_dict()])) == "beam=4 +1"
    assert config_label(json.dumps([DEFAULT_SWEEP[0].as_dict()])) == "k=2,a=0.1"
    assert config_label(None, 4, 0.3) == "k=4,a=0.3"  # rows stored before the configs column was filled


def test_beam_candidates_are_stored_with_their_width(db_path, tiny_model, gemma_tokenizer):
    engine = Engine(tiny_model, gemma_tokenizer, configs=[DEFAULT_SWEEP[0], DEFAULT_BEAM], max_new_tokens=6)
    result = engine.sweep(TEXT)
    beams = [c for c in result.candidates if DEFAULT_BEAM in c.configs]
    assert beams
    with Store(db_path) as store:
        run = store.create_run("analyze x", "tiny")
        doc_id = store.save_document(run, Document(uri="text:1", text=TEXT, status="done"), result)
        stored = {c["prompt"]: c for c in store.candidates(doc_id)}
    for cand in beams:
        configs = json.loads(stored[cand.prompt]["configs"])
        assert {"top_k": 8, "penalty_alpha": 0.0, "beams": 4} in configs
        if cand.configs == [DEFAULT_BEAM]:
            assert config_label(stored[cand.prompt]["configs"]) == "beam=4"


def test_beams_option_reaches_the_engine_and_keys_the_run(monkeypatch, capsys, db_path, tiny_model, gemma_tokenizer):
    from revprompt.core.cli import main

    seen = []

    def load(cls, model=None, **kwargs):
        seen.append(kwargs["configs"])
        return Engine(tiny_model, gemma_tokenizer, configs=kwargs["configs"], max_new_tokens=4, model_name="tiny")

    monkeypatch.setattr(Engine, "load", classmethod(load))
    for extra in ([], ["--beams", "0"], ["--beams", "2"]):
        try:
            main(["analyze", TEXT, "--db", db_path, "--json", "--no-plugins", *extra])
        except SystemExit as exc:
            assert not exc.code
        assert json.loads(capsys.readouterr().out)
    assert seen == [sweep_configs(4), sweep_configs(0), sweep_configs(2)]
    with Store(db_path) as store:
        _, rows = store.query("SELECT config, target_key FROM runs ORDER BY created_at")
    assert len({key for _, key in rows}) == 3  # three runs, none resumed by another: the width keys the run
    settings = [json.loads(config) for config, _ in rows]
    assert "beams" not in settings[0] and settings[1]["beams"] == 0 and settings[2]["beams"] == 2


def test_bad_beams_is_a_usage_error(monkeypatch, capsys):
    from conftest import cli_runner

    run = cli_runner(monkeypatch, capsys, lambda: None)  # refused before any model is loaded
    for command in (["analyze", TEXT], ["eval", "pairs.jsonl"], ["serve"]):
        code, _, err = run(*command, "--beams", "-1")
        assert code == 2 and "--beams" in err and "-1" in err


def test_pages_are_swept_without_beams_in_a_mixed_batch(tiny_model, gemma_tokenizer):
    """A web page gets the contrastive configurations alone, a response the beams too; a batch mixing both
    gives each what it gets alone."""
    engine = Engine(tiny_model, gemma_tokenizer, max_new_tokens=5, batch_docs=4)
    assert engine.configs_for("page") == list(DEFAULT_SWEEP) and engine.configs_for("response")[-1] == DEFAULT_BEAM
    texts = [TEXT, "Cargo is Rust's build tool and package manager. Run cargo build.", TEXT[:40]]
    kinds = ["response", "page", "page"]
    together = dict(engine.sweep_many(texts, kinds=kinds))
    for i, (text, kind) in enumerate(zip(texts, kinds)):
        alone = engine.sweep(text, kind)
        assert [c.token_ids for c in together[i].candidates] == [c.token_ids for c in alone.candidates]
        has_beams = any(cfg.beams for c in alone.candidates for cfg in c.configs)
        assert has_beams == (kind == "response")
    only_beams = Engine(tiny_model, gemma_tokenizer, configs=[DEFAULT_BEAM], max_new_tokens=4)
    assert only_beams.configs_for("page") == [DEFAULT_BEAM]  # nothing else to sweep a page with
