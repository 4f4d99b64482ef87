"""Packed oneDNN linears: the same numbers as nn.Linear, and the plain path wherever packing can't apply."""

from __future__ import annotations

import pytest
import torch

from revprompt.core import cpu_linear

pytestmark = pytest.mark.skipif(not cpu_linear.available(), reason="this torch has no oneDNN")


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 300), torch.nn.GELU(), torch.nn.Linear(300, 48, bias=False))


def test_packed_linears_match_plain_ones():
    model = _model()
    x = torch.randn(2, 7, 64)
    with torch.no_grad():
        expected = model(x)
        assert cpu_linear.pack_linears(model) == 2
        assert cpu_linear.pack_linears(model) == 0  # already switched
        got = model(x)
    assert model[0]._revprompt_packed is not None  # the packed path ran
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight"]


def test_weight_changed_in_place_is_repacked():
    model = _model()
    cpu_linear.pack_linears(model)
    x = torch.randn(5, 64)
    with torch.no_grad():
        before = model(x)
        model[2].weight.mul_(2.0)
        after = model(x)
    torch.testing.assert_close(after, before * 2.0, rtol=1e-5, atol=1e-5)


def test_autograd_and_other_dtypes_use_the_plain_linear():
    model = _model()
    cpu_linear.pack_linears(model)
    x = torch.randn(3, 64)
    model(x).sum().backward()  # training through a packed model still works
    assert model[0].weight.grad is not None
    fp16 = _model().to(torch.float16)
    assert cpu_linear.pack_linears(fp16) == 0


@pytest.mark.skipif(torch.bfloat16 not in cpu_linear.packable_dtypes(), reason="no native oneDNN bf16 on this CPU")
def test_bf16_linears_are_packed_where_native():
    model = _model().to(torch.bfloat16)
    x = torch.randn(2, 7, 64, dtype=torch.bfloat16)
    with torch.no_grad():
        expected = model(x)
        assert cpu_linear.pack_linears(model) == 2
        got = model(x)
    assert model[0]._revprompt_packed is not None and got.dtype == torch.bfloat16
    torch.testing.assert_close(got, expected, rtol=2e-2, atol=2e-2)
    with torch.no_grad():  # a bf16 input into an fp32-packed layer (or the reverse) takes the plain path
        model.float()
        torch.testing.assert_close(model(x.float()), expected.float(), rtol=5e-2, atol=5e-2)


def test_packable_dtypes_follow_onednn(monkeypatch):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False, raising=False)
    assert cpu_linear.packable_dtypes() == (torch.float32,)
    assert cpu_linear.pack_linears(_model().to(torch.bfloat16)) == 0


def test_a_failing_pack_falls_back_for_good(monkeypatch):
    model = _model()
    cpu_linear.pack_linears(model)
    calls = []

    def broken(weight, rows):
        calls.append(rows)
        raise RuntimeError("no oneDNN reorder here")

    monkeypatch.setattr(torch.ops.mkldnn, "_reorder_linear_weight", broken)
    x = torch.randn(4, 64)
    with torch.no_grad():
        got = model(x)
        again = model(x)
    plain = torch.nn.Sequential(*[m for m in _model()])
    with torch.no_grad():
        torch.testing.assert_close(got, plain(x))
    torch.testing.assert_close(again, got)
    assert len(calls) == 2  # once per layer, not once per call


@pytest.mark.skipif(not cpu_linear.half_available(), reason="no fbgemm fp16 linear (or no AVX2/F16C) here")
def test_half_weights_compute_with_fp16_rounded_weights_only_when_asked():
    """Inside `half_weights()` a packed linear computes as fp32 on its weights rounded to fp16; outside it, and
    in other threads, it is the fp32 linear."""
    import threading

    model = _model()
    rounded = _model()
    with torch.no_grad():
        for m in rounded:
            if isinstance(m, torch.nn.Linear):
                m.weight.copy_(m.weight.half().float())
    x = torch.randn(2, 7, 64)
    cpu_linear.pack_linears(model)
    assert cpu_linear.pack_half(model) == 2
    with torch.no_grad():
        exact, half_ref = model(x), rounded(x)
        with cpu_linear.half_weights():
            got = model(x)
            other: list = []
            thread = threading.Thread(target=lambda: other.append(model(x)))
            thread.start()
            thread.join()
        again = model(x)
        one_row = model[0](x[0, 0])  # a single vector, as the sweep's first step passes
        with cpu_linear.half_weights():
            one_row_half = model[0](x[0, 0])
    torch.testing.assert_close(got, half_ref, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got, exact, rtol=0, atol=1e-7)  # it did take the fp16 path
    torch.testing.assert_close(other[0], exact, rtol=1e-5, atol=1e-5)  # the flag is per thread
    torch.testing.assert_close(again, exact, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(one_row_half, rounded[0](x[0, 0]), rtol=1e-5, atol=1e-5)
    assert one_row.shape == one_row_half.shape == (300,)


@pytest.mark.skipif(not cpu_linear.half_available(), reason="no fbgemm fp16 linear (or no AVX2/F16C) here")
def test_half_packing_is_ignored_once_the_weight_changes():
    model = _model()
    cpu_linear.pack_linears(model)
    cpu_linear.pack_half(model)
    x = torch.randn(4, 300)
    with torch.no_grad():
        with cpu_linear.half_weights():
            before = model[2](x)
        model[2].weight.mul_(2.0)
        exact = model[2](x)
        with cpu_linear.half_weights():
            got = model[2](x)
    torch.testing.assert_close(got, exact, rtol=1e-5, atol=1e-5)  # the stale fp16 packing is not used
    assert not torch.allclose(got, before * 2.0, rtol=0, atol=1e-7)  # (which would have given these)


def test_half_weights_pay_only_on_cpus_without_native_bf16():
    from revprompt.core import hardware

    bf16_cpu = "flags\t: fpu avx2 f16c avx512f avx512_bf16\n"
    assert not hardware.half_weights_pay("cpu", "float32", bf16_cpu)
    assert not hardware.half_weights_pay("cuda", "float32")
    assert not hardware.half_weights_pay("cpu", "bfloat16")
    assert hardware.cpu_sweep_workers(1) == 1
    assert hardware.cpu_sweep_workers(2) == hardware.cpu_sweep_workers(16) == 2
