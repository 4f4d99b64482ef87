"""`revprompt soup-adapters`: the soup's merged model is the base plus the weighted mean of the adapters' updates,
exactly or truncated by SVD, and adapters that cannot be averaged get a clear error."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import make_tiny_gemma

from revprompt.core.errors import UserError
from revprompt.training.soup import soup


def _adapter(path, seed, r=4, targets=("q_proj", "v_proj", "down_proj"), shared_a_seed=None):
    """A LoRA adapter on the tiny model with random (non-zero) A and B, saved as PEFT saves it."""
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(
        make_tiny_gemma(seed=0, vocab_size=512), LoraConfig(r=r, lora_alpha=2 * r, target_modules=list(targets))
    )
    gen = torch.Generator().manual_seed(seed)
    gen_a = torch.Generator().manual_seed(shared_a_seed) if shared_a_seed is not None else gen
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if ".lora_A." in name:
                p.copy_(torch.randn(p.shape, generator=gen_a) * 0.1)
            elif ".lora_B." in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    model.save_pretrained(str(path))
    return path


def _merged(adapter_dir):
    from peft import PeftModel

    model = PeftModel.from_pretrained(make_tiny_gemma(seed=0, vocab_size=512), str(adapter_dir))
    return {k: v.clone() for k, v in model.merge_and_unload().state_dict().items()}


def test_an_exact_soup_merges_to_the_weighted_mean_of_the_updates(tmp_path):
    one, two = _adapter(tmp_path / "one", 1), _adapter(tmp_path / "two", 2)
    report = soup([one, two], tmp_path / "soup", weights=[0.25, 0.75])
    assert report.rank == 8 and report.kept_energy_min == 1.0
    base = make_tiny_gemma(seed=0, vocab_size=512).state_dict()
    m1, m2, ms = _merged(one), _merged(two), _merged(report.out)
    changed = [k for k in base if not torch.equal(m1[k], base[k])]
    assert changed and all("q_proj" in k or "v_proj" in k or "down_proj" in k for k in changed)
    for k in changed:
        want = base[k] + 0.25 * (m1[k] - base[k]) + 0.75 * (m2[k] - base[k])
        torch.testing.assert_close(ms[k], want, atol=1e-5, rtol=1e-4)
        assert not torch.allclose(ms[k], m1[k], atol=1e-4) and not torch.allclose(ms[k], m2[k], atol=1e-4)


def test_truncation_is_exact_when_the_mean_has_the_rank_and_reports_what_it_drops_otherwise(tmp_path):
    # Two adapters with the same A: the mean update B_mean A has rank 4, so rank 4 loses nothing.
    one = _adapter(tmp_path / "one", 1, shared_a_seed=9)
    two = _adapter(tmp_path / "two", 2, shared_a_seed=9)
    exact = soup([one, two], tmp_path / "exact")
    cut = soup([one, two], tmp_path / "cut", rank=4)
    assert cut.rank == 4 and cut.kept_energy_min > 0.999999
    me, mc = _merged(exact.out), _merged(cut.out)
    for k in me:
        torch.testing.assert_close(mc[k], me[k], atol=1e-5, rtol=1e-4)
    # Independent adapters: rank 2 of 8 keeps part of the update, and says how much.
    lossy = soup([_adapter(tmp_path / "a", 3), _adapter(tmp_path / "b", 4)], tmp_path / "lossy", rank=2)
    assert 0.2 < lossy.kept_energy_min <= lossy.kept_energy_mean < 0.99


def test_adapters_that_cannot_be_averaged_get_a_clear_error(tmp_path, monkeypatch, capsys):
    from conftest import cli_runner

    one = _adapter(tmp_path / "one", 1)
    other = _adapter(tmp_path / "other", 2, targets=("k_proj",))
    with pytest.raises(UserError, match="different modules"):
        soup([one, other], tmp_path / "x")
    run = cli_runner(monkeypatch, capsys, lambda: None)
    code, _, err = run("soup-adapters", one, tmp_path, "-o", tmp_path / "y")
    assert code == 1 and "not a LoRA adapter folder" in err
    code, _, err = run("soup-adapters", one, one, "--weight", "1", "-o", tmp_path / "y")
    assert code == 1 and "one non-negative weight per adapter" in err
    code, out, _ = run("soup-adapters", one, _adapter(tmp_path / "two", 2), "-o", tmp_path / "z", "--rank", "3")
    assert code == 0 and "rank 3" in out and (tmp_path / "z" / "adapter" / "adapter_model.safetensors").exists()


def test_a_soup_keeps_the_page_separator_a_member_learned_and_refuses_members_that_read_differently(tmp_path):
    one, two = _adapter(tmp_path / "one", 1), _adapter(tmp_path / "two", 2)
    (one / "revprompt.json").write_text(json.dumps({"format": "F", "examples_seen_total": 100}))
    (two / "revprompt.json").write_text(json.dumps({"format": "F", "examples_seen_total": 160, "page_separator": "P"}))
    report = soup([one, two], tmp_path / "soup")
    meta = json.loads((report.out / "revprompt.json").read_text())
    assert meta == {"format": "F", "examples_seen_total": 160, "page_separator": "P"}
    recorded = json.loads((tmp_path / "soup" / "soup.json").read_text())
    assert recorded["adapters"] == [str(one), str(two)] and recorded["weights"] == [0.5, 0.5]
    (two / "revprompt.json").write_text(json.dumps({"format": "G"}))
    with pytest.raises(UserError, match="read text differently"):
        soup([one, two], tmp_path / "soup2")
    assert not (tmp_path / "soup2").exists()  # refused before any weights were written: no half-made adapter
