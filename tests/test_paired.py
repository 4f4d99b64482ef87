"""scripts/paired.py: per-row differences between two eval details files decide whether a segment is shipped."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "scripts" / "paired.py"


def _module():
    spec = importlib.util.spec_from_file_location("paired_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["paired_script"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _chat(path: Path, cosines: list[float], f1s: list[float]) -> Path:
    with path.open("w") as f:
        for i, (c, t) in enumerate(zip(cosines, f1s)):
            f.write(json.dumps({"key": f"k{i}", "scores": {"cosine": {"top1": c}, "token_f1": {"top1": t}}}) + "\n")
    return path


def test_chat_differences_mean_stderr_and_slices(tmp_path, capsys):
    paired = _module()
    a = _chat(tmp_path / "a.jsonl", [0.5, 0.6, 0.7, 0.8], [0.1, 0.2, 0.3, 0.4])
    b = _chat(tmp_path / "b.jsonl", [0.6, 0.6, 0.5, 0.9], [0.1, 0.2, 0.3, 0.4])
    rows_a, rows_b = paired.load_rows(a), paired.load_rows(b)
    whole, first, second = paired.compare(rows_a, rows_b, "cosine", slices=2)
    diffs = [0.1, 0.0, -0.2, 0.1]
    mean = sum(diffs) / 4
    assert math.isclose(whole.mean, mean, abs_tol=1e-9)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 3)
    assert math.isclose(whole.stderr, sd / 2, rel_tol=1e-9)
    assert (whole.better, whole.worse, whole.n) == (2, 1, 4)
    assert math.isclose(first.mean, 0.05, abs_tol=1e-9) and math.isclose(second.mean, -0.05, abs_tol=1e-9)
    assert first.metric == "cosine[0:2]" and second.metric == "cosine[2:4]"
    assert paired.main([str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "cosine: B - A = -0.0000" in out or "cosine: B - A = +0.0000" in out
    assert "token_f1: B - A = +0.0000" in out


def test_web_rows_pair_by_file_and_skip_rows_only_one_side_has(tmp_path, capsys):
    paired = _module()
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps({"file": f, "title_cosine_top1": v}) + "\n" for f, v in [("x", 0.2), ("y", 0.4)]))
    b.write_text("".join(json.dumps({"file": f, "title_cosine_top1": v}) + "\n" for f, v in [("y", 0.7), ("z", 0.9)]))
    assert paired.main([str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "1 rows in both" in out
    assert "title_cosine: B - A = +0.3000" in out


def test_a_file_that_is_not_details_is_a_clear_error(tmp_path, capsys):
    paired = _module()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "p", "response": "r"}) + "\n")
    assert paired.main([str(bad), str(bad)]) == 2
    assert "neither 'key' nor 'file'" in capsys.readouterr().err
