"""What this machine can do fast: which device and dtype inference should use when the user says `auto`.

The machines revprompt runs on differ: some CPUs compute bf16 natively (AVX512-BF16, AMX-BF16), where it
halves the weight traffic that a decoding step is made of; on a plain AVX2 CPU bf16 is emulated and 4-7×
slower than fp32. The same command must pick the fast path on each, so `auto` asks the CPU.

Nothing here imports torch at module level: `revprompt --help` and the CLI's option parsing stay fast.
"""

from __future__ import annotations

from pathlib import Path

DTYPES = ("auto", "float32", "bfloat16")
DEVICES = ("auto", "cpu", "cuda")
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
_SHOWN_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none: macOS, Windows)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """AVX512-BF16 or AMX-BF16: there a bf16 step is faster; on plain AVX2 it is slower."""
    flags = cpu_flags(cpuinfo)
    return any(f in flags for f in _BF16_FLAGS)


def describe_cpu(cpuinfo: str | None = None) -> str:
    """The flags that decide the fast path, for benchmarks and `--verbose` ("avx2 avx512f avx512_bf16")."""
    flags = cpu_flags(cpuinfo)
    return " ".join(f for f in _SHOWN_FLAGS if f in flags) or "none of " + "/".join(_SHOWN_FLAGS)


# Documents per forward on a CUDA GPU. A GPU decoding step costs about the same for 16 documents as for 64 (it is
# bound by kernel launches, not arithmetic), so s/doc falls with the group: on an H100, shipped model, bf16,
# 300-token texts, 0.85 s/doc at 16, 0.25 at 32, 0.19 at 64, with 1.5 GiB at the peak (bench/bench_gpu.py,
# bench/RESULTS.md). Each document's share of that peak, rounded up, bounds the group where memory is short.
GPU_BATCH_DOCS = 64
GPU_BYTES_PER_DOC = 32 * 2**20


def gpu_batch_docs(free_bytes: int | None = None) -> int:
    """Documents per forward on the GPU: GPU_BATCH_DOCS, fewer when half the free memory would not hold them
    (another process on the card, a smaller card)."""
    if free_bytes is None:
        import torch

        free_bytes, _ = torch.cuda.mem_get_info()
    return max(1, min(GPU_BATCH_DOCS, int(free_bytes // 2 // GPU_BYTES_PER_DOC)))


def cpu_sweep_workers(threads: int | None = None) -> int:
    """Forests a CPU batch runs side by side (core/engine.py): two where there are two threads or more. On a
    2-core AVX2 CPU, 16 texts of 300 tokens: two one-thread forests of 8 took 1.05-1.16x less time than one
    two-thread forest of 16, with the same candidates (bench/RESULTS.md, session 14)."""
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    return 2 if threads >= 2 else 1


def half_weights_pay(device: str = "cpu", dtype: str = "float32", cpuinfo: str | None = None) -> bool:
    """Whether a batch should run on fp16 weights (core/cpu_linear.py): on a CPU in fp32 because it lacks
    native bf16, where fbgemm's fp16 linear is there. Where bf16 is native the auto dtype is already bf16."""
    if device != "cpu" or dtype != "float32" or cpu_has_native_bf16(cpuinfo):
        return False
    from . import cpu_linear

    return cpu_linear.half_available()


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_device(device: str | None = "auto") -> str:
    """`auto` is the GPU when one is present, else the CPU. Asking for CUDA without one is a user error."""
    from .errors import UserError

    device = (device or "auto").lower()
    if device not in DEVICES:
        raise UserError(f"unknown device '{device}': use one of {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda" and not cuda_available():
        raise UserError("--device cuda: no CUDA GPU is available to PyTorch here (use --device cpu or auto)")
    return device


def resolve_dtype(dtype: str | None = "auto", device: str = "cpu") -> str:
    """`auto` is bf16 where the hardware computes it natively (a CUDA GPU with bf16, a CPU with AVX512-BF16 or
    AMX-BF16), fp32 elsewhere. An explicit float32/bfloat16 is kept as asked."""
    from .errors import UserError

    dtype = (dtype or "auto").lower()
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype '{dtype}': use one of {', '.join(DTYPES)}")
    if dtype != "auto":
        return dtype
    if device == "cuda":
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    return "bfloat16" if cpu_has_native_bf16() else "float32"
