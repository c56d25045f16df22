"""What a user chooses for a run (device, explanation method, layers, class): plain values, no torch,
so that the window can offer the choices before torch is loaded."""

from __future__ import annotations

from dataclasses import dataclass

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class ExplainOptions:
    layers: tuple[str, ...] | None = None  # manifest layer labels; None: the default layer; (): none
    method: str = "gradcam"  # a key of EXPLANATION_METHODS
    target_class: int | None = None  # None: the predicted class
