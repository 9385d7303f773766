"""Which torch device to compute on: ``--device auto|cpu|cuda|mps`` for train, eval and
predict. ``auto`` takes an accelerator when there is one (CUDA, then Apple's MPS), else the
CPU; naming one that is missing is a one-line error, not a silent fallback."""

from __future__ import annotations

import torch

DEVICES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str = "auto") -> torch.device:
    """``DEVICES`` entry (or "cuda:N") -> torch.device.

    Raises:
        ValueError: an unknown name, or an accelerator this machine does not have.
    """
    base = name.split(":")[0]
    if base not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA GPU is available to this PyTorch")
    if base == "mps" and not _mps_available():
        raise ValueError("--device mps: Apple's MPS backend is not available here")
    return torch.device(name)


def autocast(device: torch.device):
    """Mixed precision for a network's forward pass: bfloat16 autocast on CUDA (no loss
    scaling needed, unlike float16), a no-op elsewhere (the CPU path stays float32)."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                          enabled=device.type == "cuda")
