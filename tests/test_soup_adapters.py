"""scripts/soup_adapters.py: the blended adapter's delta is exactly the weighted sum of the two adapters' deltas."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

SCRIPT = Path(__file__).parents[1] / "scripts" / "soup_adapters.py"
NAME = "base_model.model.model.layers.0.self_attn.q_proj.lora_{}.weight"


def _module():
    spec = importlib.util.spec_from_file_location("soup_adapters", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _adapter(path: Path, seed: int, r: int = 4, alpha: float = 8.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(r, 16, generator=g), torch.randn(12, r, generator=g)
    path.mkdir()
    save_file({NAME.format("A"): a, NAME.format("B"): b}, str(path / "adapter_model.safetensors"))
    (path / "adapter_config.json").write_text(json.dumps({"r": r, "lora_alpha": alpha, "peft_type": "LORA"}))
    (path / "revprompt.json").write_text(json.dumps({"seed": seed}))
    return a, b


def test_blend_is_the_weighted_sum_of_deltas_with_the_same_scale(tmp_path):
    soup = _module()
    a1, b1 = _adapter(tmp_path / "one", 1)
    a2, b2 = _adapter(tmp_path / "two", 2)
    assert soup.main([str(tmp_path / "one"), str(tmp_path / "two"), "-o", str(tmp_path / "out"), "--t", "0.25"]) == 0
    w = load_file(str(tmp_path / "out" / "adapter_model.safetensors"))
    config = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["lora_alpha"] / config["r"] == 2.0
    got = w[NAME.format("B")] @ w[NAME.format("A")]
    torch.testing.assert_close(got, 0.75 * (b1 @ a1) + 0.25 * (b2 @ a2))
    assert json.loads((tmp_path / "out" / "revprompt.json").read_text()) == {"seed": 2}


def test_adapters_with_different_scales_are_refused(tmp_path, capsys):
    soup = _module()
    _adapter(tmp_path / "one", 1, alpha=8.0)
    _adapter(tmp_path / "two", 2, alpha=16.0)
    assert soup.main([str(tmp_path / "one"), str(tmp_path / "two"), "-o", str(tmp_path / "out")]) == 2
    assert "scale differently" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
