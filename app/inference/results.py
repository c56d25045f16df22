"""What one model said about one image, keyed by that image's identity."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from app.core.layers import Box


@dataclass(frozen=True)
class InferenceResult:
    image_identity: str
    model_key: str
    task: str
    classes: tuple[str, ...]
    device: str
    note: str = ""  # e.g. that the GPU failed and the CPU was used
    route: str = ""  # why this model read this image (routing.py)
    probabilities: np.ndarray | None = None  # per class
    calibrated: bool = False  # probabilities were temperature-scaled on held-out data (model card)
    target_class: int | None = None  # the class the heatmaps explain
    method: str = ""
    ood_distance: float | None = None  # how far the image lies from the training images (see ood.py)
    ood_limit: float | None = None
    mask: np.ndarray | None = None  # lesion probability on the image's pixel grid
    threshold: float = 0.5
    mask_model: str = ""  # the key of the model that drew the mask, when not this one (a classifier's lesion mask)
    mask_note: str = ""  # why a classifier's result has no lesion mask
    heatmaps: dict[str, np.ndarray] = field(default_factory=dict)  # layer label -> relative map, image grid
    saliency: dict[str, np.ndarray] = field(default_factory=dict)  # GLAM: class -> map in 0..1, coarse grid
    map_scale: float = 1.0  # image pixels per saliency value
    patches: tuple[Box, ...] = ()  # GLAM: the patch(es) the local network read, image pixels

    @property
    def mask_source(self) -> str:
        """The key of the model that drew the mask (the SEG's algorithm, the mask layer's source)."""
        return self.mask_model or self.model_key

    @property
    def out_of_distribution(self) -> bool:
        return self.ood_distance is not None and self.ood_limit is not None and self.ood_distance > self.ood_limit
