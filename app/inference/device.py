"""Where inference runs: CUDA when present, else Apple's MPS, else the CPU; a setting overrides."""

from __future__ import annotations

import torch

from app.core.errors import RadLensError
from app.inference.options import DEVICE_CHOICES


class DeviceError(RadLensError, ValueError):
    """The device asked for is not one there is (a ValueError too, as before)."""

    def __init__(self, reason: str) -> None:
        super().__init__("", reason)


def choose_device(preference: str = "auto") -> torch.device:
    if preference not in DEVICE_CHOICES:
        raise DeviceError(f"device must be one of {', '.join(DEVICE_CHOICES)}, got {preference!r}")
    if preference == "cuda" and not torch.cuda.is_available():
        raise DeviceError("CUDA was asked for but no CUDA GPU is available")
    if preference == "mps" and not _mps_available():
        raise DeviceError("MPS was asked for but is not available")
    if preference != "auto":
        return torch.device(preference)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def is_gpu_failure(error: BaseException) -> bool:
    """Errors after which running again on the CPU is the right answer (memory, driver, kernels)."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(
        word in text for word in ("cuda", "cudnn", "cublas", "out of memory", "mps", "device-side", "driver"))


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())
