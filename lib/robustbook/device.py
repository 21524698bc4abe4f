"""Devices and random generators: the one place the package names a device.

Every ``torch.Generator`` is made here, for the device of the tensors it draws
(``generator(device, seed)``); a CUDA attack given a CPU generator fails, which
is how the first CUDA run of the book used to die at the end of its first
epoch. Code that draws with an optional generator draws on
``rng_device(generator, default)`` and moves the result. RNG states in
checkpoints and records stay on the host (``HOST``): ``torch.set_rng_state``
and ``torch.cuda.set_rng_state`` take CPU byte tensors.

``tests/test_device.py`` fails when other modules create a generator, or a
tensor on a hard-coded device, outside this module.
"""

from __future__ import annotations

from typing import Optional, Union

import torch

from .errors import ConfigError

__all__ = ["HOST", "resolve", "of", "generator", "rng_device", "bf16_speed", "slow_bf16", "SLOW_BF16"]

#: The host: RNG states, checkpoints on disk, records, per-image flags.
HOST = torch.device("cpu")

DeviceLike = Union[str, torch.device]


def resolve(name: Optional[DeviceLike] = "auto") -> torch.device:
    """'auto' (or None) -> CUDA when present, else the CPU; 'cuda' without a GPU is a
    ConfigError saying what to use instead; anything else as ``torch.device``."""
    if isinstance(name, torch.device):
        dev = name
    elif name in (None, "auto"):
        return torch.device("cuda") if torch.cuda.is_available() else HOST
    else:
        try:
            dev = torch.device(name)
        except (RuntimeError, TypeError) as err:
            raise ConfigError(f"device={name!r} is not a device: use 'auto', 'cpu', 'cuda' or 'cuda:<i>'") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={str(dev)!r} but no CUDA device is available; use device='auto' or 'cpu'")
    return dev


def of(obj) -> torch.device:
    """Device of a tensor, or of a module's first parameter (buffer); the host for neither."""
    if isinstance(obj, torch.Tensor):
        return obj.device
    for t in (*obj.parameters(), *obj.buffers()):
        return t.device
    return HOST


def generator(device: DeviceLike, seed: int) -> torch.Generator:
    """A ``torch.Generator`` on `device` ('auto' resolved), seeded with `seed`. Make it on the
    device of the tensors it serves: ``attacks.pgd`` rejects a generator on another device."""
    return torch.Generator(device=resolve(device)).manual_seed(int(seed))


def rng_device(gen: Optional[torch.Generator], default: DeviceLike = HOST) -> torch.device:
    """Where a draw with the optional generator `gen` happens: its device, else `default`
    (the global RNG of that device)."""
    return gen.device if gen is not None else torch.device(default)


_BF16_SPEED: dict = {}

SLOW_BF16 = 0.5
"""bf16 matmuls slower than this fraction of fp32 (`bf16_speed`): no bf16 hardware."""


def slow_bf16(device: DeviceLike = HOST) -> bool:
    """Whether bf16 on `device` is a CPU without bf16 instructions (`bf16_speed` < SLOW_BF16)."""
    dev = resolve(device)
    return dev.type == "cpu" and bf16_speed(dev) < SLOW_BF16


def bf16_speed(device: DeviceLike = HOST, n: int = 256) -> float:
    """bf16 matmul throughput over fp32 on `device` (best of 3 n x n products, cached per
    device): about 2 or more where the hardware has bf16 units (CUDA, AVX512-BF16/AMX CPUs),
    far below 1 where torch falls back to a slow generic path (measured 0.003 on an AVX2-only
    EPYC: bf16 autocast training there would take hundreds of times longer)."""
    import time

    dev = resolve(device)
    key = str(dev)
    if key not in _BF16_SPEED:
        best = {}
        for dtype in (torch.float32, torch.bfloat16):
            a = torch.ones(n, n, device=dev, dtype=dtype)
            times = []
            for _ in range(3):
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                t0 = time.perf_counter()
                a @ a
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                times.append(time.perf_counter() - t0)
            best[dtype] = min(times)
        _BF16_SPEED[key] = best[torch.float32] / max(best[torch.bfloat16], 1e-9)
    return _BF16_SPEED[key]


def _cpuinfo(field: str) -> Optional[str]:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The host CPU's model name (/proc/cpuinfo; `platform` elsewhere): hosts of one name in
    the cloud still differ, so records keep it beside `cpu_flags`."""
    import platform

    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_flags() -> list:
    """The host CPU's vector extensions that decide fp32 / bf16 speed (AVX2, AVX-512, bf16, AMX)."""
    have = set((_cpuinfo("flags") or "").split())
    return [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in have]
