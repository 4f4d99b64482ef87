"""scripts/ship_adapter.py: the record of a shipped adapter names every segment its weights saw."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "scripts" / "ship_adapter.py"


def _ship():
    spec = importlib.util.spec_from_file_location("ship_adapter", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(folder: Path, init: str | None, seen: int) -> Path:
    """A `revprompt train -o` folder's record, with the fields the script reads."""
    folder.mkdir(parents=True)
    config = {
        "data": ["pairs.jsonl"],
        "init_adapter": init,
        "schedule": "wsd",
        "warmup_steps": 10,
        "lr": 1e-4,
        "decay_fraction": 0.3,
        "batch_size": 8,
        "grad_accum": 2,
        "max_response_tokens": 128,
        "lora_r": 32,
        "lora_alpha": 64,
        "lora_dropout": 0.0,
        "lora_targets": ["q_proj"],
    }
    record = {
        "config": config,
        "examples_seen": seen,
        "steps": seen // 16,
        "seconds": 60.0,
        "examples_per_second": 1.0,
        "stop_reason": "done",
        "bf16": False,
        "device": "CPU",
        "torch": "2.13.0",
        "mean_loss_first_20": 2.0,
        "mean_loss_last_20": 1.5,
        "losses": [2.0, 1.5],
    }
    (folder / "training_record.json").write_text(json.dumps(record))
    return folder


def test_a_chain_of_runs_down_to_the_shipped_adapter_is_recorded_whole(tmp_path):
    ship = _ship()
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "a.cmd").write_text("revprompt train a\n")
    shipped, _, second = _two_runs(tmp_path)
    chain, continues = ship.segment_chain(second, "revprompt train b", shipped=shipped)
    assert continues
    assert [s["examples_seen"] for s in chain] == [100, 200]
    assert [s["command"] for s in chain] == ["revprompt train a", "revprompt train b"]


def test_a_chain_that_starts_from_the_base_does_not_continue_the_shipped_record(tmp_path):
    ship = _ship()
    shipped = tmp_path / "model" / "adapter"
    first = _run(tmp_path / "runs" / "a", None, 100)
    second = _run(tmp_path / "runs" / "b", str(first / "adapter"), 200)
    chain, continues = ship.segment_chain(second, None, shipped=shipped)
    assert not continues and [s["examples_seen"] for s in chain] == [100, 200]
    assert chain[0]["command"] == "(not recorded)"
    # an init adapter with no training record (e.g. someone else's) ends the chain there
    lone = _run(tmp_path / "runs" / "c", str(tmp_path / "elsewhere" / "adapter"), 50)
    chain, continues = ship.segment_chain(lone, None, shipped=shipped)
    assert not continues and len(chain) == 1


def _two_runs(tmp_path) -> tuple[Path, Path, Path]:
    """The shipped adapter's folder and two runs chained onto it (100, then 200 pairs)."""
    shipped = tmp_path / "model" / "adapter"
    shipped.mkdir(parents=True)
    first = _run(tmp_path / "runs" / "a", str(shipped), 100)
    return shipped, first, _run(tmp_path / "runs" / "b", str(first / "adapter"), 200)


def test_a_soup_records_each_members_chain_once_and_a_blend_entry(tmp_path):
    ship = _ship()
    shipped, _, second = _two_runs(tmp_path)
    soup = tmp_path / "runs" / "soup"
    soup.mkdir()
    members = [str(shipped), str(second / "adapter")]
    (soup / "soup.json").write_text(json.dumps({"adapters": members, "weights": [0.6, 0.4], "rank": 64}))
    added = ship.soup_chain(soup, shipped=shipped)
    assert [s["examples_seen"] for s in added] == [100, 200, 0]
    assert added[-1]["kind"].startswith("blend") and added[-1]["weights"] == [0.6, 0.4]
    assert "--weight 0.6 --weight 0.4" in added[-1]["command"]
    # a member whose chain starts from the base cannot be added to the shipped record
    stray = _run(tmp_path / "runs" / "c", None, 50)
    (soup / "soup.json").write_text(
        json.dumps({"adapters": [str(shipped), str(stray / "adapter")], "weights": [0.5, 0.5], "rank": 8})
    )
    with pytest.raises(SystemExit, match="does not continue the shipped adapter"):
        ship.soup_chain(soup, shipped=shipped)


def test_a_page_adapter_counts_the_record_segments_its_chain_builds_on(tmp_path):
    ship = _ship()
    shipped, _, b = _two_runs(tmp_path)
    chain, _ = ship.segment_chain(b, None, shipped=shipped)
    old = [{"command": "seg1", "examples_seen": 1000}, {"command": "seg2", "examples_seen": 2000}]
    # the chain continues the adapter shipped now: it builds on every segment of the record
    assert ship.page_lineage({"segments": old}, chain) == (2, 3300)
    # the chain was shipped inside a blend (its segments follow seg1 in the record): it shares only seg1
    blended = [old[0], *chain, {"command": "blend", "examples_seen": 0}]
    assert ship.page_lineage({"segments": blended}, chain) == (1, 1300)
    assert ship._in_record({"segments": blended}, chain[1]) == "segment 3 of this record"


def test_shipping_a_main_adapter_keeps_the_page_adapter_inside_it(tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    ship = _ship()

    def adapter(folder, value):
        folder.mkdir(parents=True)
        save_file({"w": torch.full((2, 2), value)}, str(folder / "adapter_model.safetensors"))
        (folder / "adapter_config.json").write_text("{}")
        (folder / "revprompt.json").write_text("{}")
        return folder

    dst = tmp_path / "model" / "adapter"
    ship.copy_adapter(adapter(tmp_path / "main1", 1.0), dst)
    ship.copy_adapter(adapter(tmp_path / "page", 2.0), dst / "page")
    ship.copy_adapter(adapter(tmp_path / "main2", 3.0), dst)
    assert load_file(str(dst / "adapter_model.safetensors"))["w"][0, 0].item() == 3.0
    assert load_file(str(dst / "page" / "adapter_model.safetensors"))["w"][0, 0].item() == 2.0
    assert load_file(str(dst / "page" / "adapter_model.safetensors"))["w"].dtype == torch.bfloat16


def test_a_run_that_continues_the_page_adapter_extends_its_record(tmp_path):
    ship = _ship()
    shipped = tmp_path / "model" / "adapter"
    (shipped / "page").mkdir(parents=True)
    record = {
        "segments": [{"command": "seg1", "examples_seen": 1000}],
        "page_adapter": {
            "adapter": "p1",
            "segments": [{"command": "p", "examples_seen": 300}],
            "examples_seen_total": 1300,
        },
    }
    more = _run(tmp_path / "runs" / "p2", str(shipped / "page"), 50)
    page = ship.page_record(record, more, "revprompt train p2", "p2", shipped=shipped)
    assert page["examples_seen_total"] == 1350 and [s["examples_seen"] for s in page["segments"]] == [300, 50]
    # a run from the main adapter starts the page record anew, on every segment of the main record
    fresh = _run(tmp_path / "runs" / "m", str(shipped), 70)
    page = ship.page_record(record, fresh, None, "m", shipped=shipped)
    assert page["examples_seen_total"] == 1070 and page["shares_segments"] == "the first 1 of this record's segments"


def test_a_run_from_the_shipped_page_adapters_own_run_folder_counts_its_segments_once(tmp_path):
    """s26 continued runs/s24-seg/adapter (fp32), the run the page adapter was shipped from; walking back through
    s24 and s23 to the page adapter shipped before them must not add those two segments again."""
    ship = _ship()
    shipped = tmp_path / "model" / "adapter"
    (shipped / "page").mkdir(parents=True)
    runs = tmp_path / "runs"
    s23 = _run(runs / "s23", str(shipped / "page"), 40)
    (runs / "s23.cmd").write_text("revprompt train s23")
    s24 = _run(runs / "s24", str(s23 / "adapter"), 60)
    (runs / "s24.cmd").write_text("revprompt train s24")
    record = {"segments": [{"command": "seg1", "examples_seen": 1000}]}
    record["page_adapter"] = ship.page_record(
        {
            **record,
            "page_adapter": {
                "adapter": "p",
                "segments": [{"command": "p", "examples_seen": 300}],
                "examples_seen_total": 1300,
            },
        },
        s24,
        "revprompt train s24",
        "s24",
        shipped=shipped,
    )
    assert record["page_adapter"]["examples_seen_total"] == 1400
    s26 = _run(runs / "s26", str(s24 / "adapter"), 70)
    page = ship.page_record(record, s26, "revprompt train s26", "s26", shipped=shipped)
    assert [s["examples_seen"] for s in page["segments"]] == [300, 40, 60, 70]
    assert page["examples_seen_total"] == 1470
