"""Choosing the device and the precision settings that go with it.

``--precision`` (both trainers): ``fp32`` is plain float32, bit-exact on resume; ``bf16`` runs the
forward and backward passes under bf16 autocast with channels_last tensors (weights, optimiser
state and EMA stay float32); ``auto`` picks bf16 on CUDA and on CPUs with native bf16 (AVX-512
BF16 or AMX, where a bf16 step of stage I is about twice as fast), fp32 elsewhere.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn

from stackgan.config import PRECISIONS
from stackgan.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but torch sees no CUDA device")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {name!r}: {exc}") from None


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX-512 BF16 / AMX), not by emulation."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``auto`` / ``fp32`` / ``bf16`` -> the precision a run uses on ``device``: ``fp32`` or ``bf16``."""
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    dev = torch.device(device)
    if dev.type == "cuda":
        return "bf16"
    if dev.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on ``device`` (CPU or CUDA) when ``enabled``; a no-op context otherwise."""
    if not enabled or device.type not in ("cpu", "cuda"):
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def to_channels_last(*modules: nn.Module) -> None:
    """Store the 4-d weights of ``modules`` channels_last (what oneDNN / cuDNN run fastest in bf16)."""
    for m in modules:
        m.to(memory_format=torch.channels_last)
