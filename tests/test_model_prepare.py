"""The one-time preparation of a model (dequantizing the base, merging an adapter) says one revprompt line, and
no transformers progress bar buries it (issue J)."""

import json
import warnings

import torch

from revprompt.core import model as model_loader
from tests.conftest import make_tiny_gemma

BARS = ("Loading weights", "Writing model shards", "de-quantizing", "it/s]")


def test_merging_an_adapter_prints_one_line_and_no_progress_bars(tmp_path, monkeypatch, capfd, tiny_model_dir):
    from peft import LoraConfig, get_peft_model

    monkeypatch.setenv("REVPROMPT_CACHE", str(tmp_path / "cache"))
    adapter = tmp_path / "adapter"
    peft_model = get_peft_model(make_tiny_gemma(), LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"]))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if ".lora_B." in name:
                p.fill_(0.01)  # a non-zero update, so the merge changes the weights
    peft_model.save_pretrained(str(adapter))
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = tiny_model_dir  # merge onto the tiny base, not the packaged one
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    capfd.readouterr()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        merged = model_loader.merged_adapter_dir(adapter)

    err = capfd.readouterr().err
    # PEFT's merge calls a deprecated transformers method; its FutureWarning is not the user's business.
    assert not [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
    assert (merged / "model.safetensors").exists()
    assert err.count("revprompt: merging adapter") == 1
    assert not [bar for bar in BARS if bar in err], err
    assert model_loader.merged_adapter_dir(adapter) == merged  # cached: the second call merges nothing
    assert "merging" not in capfd.readouterr().err


def test_the_gguf_converters_own_bar_is_muted_only_while_preparing(capfd):
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    original = gguf_utils.tqdm
    with model_loader._no_progress_bars():
        for _ in gguf_utils.tqdm(range(3), desc="Converting and de-quantizing GGUF tensors..."):
            pass
    assert "de-quantizing" not in capfd.readouterr().err
    assert gguf_utils.tqdm is original
    for _ in gguf_utils.tqdm(range(3), desc="Converting and de-quantizing GGUF tensors...", mininterval=0):
        pass
    assert "de-quantizing" in capfd.readouterr().err  # the switch is ours to restore, not a global off
