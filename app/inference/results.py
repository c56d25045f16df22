"""What one model said about one image, keyed by that image's identity, and the layers it makes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from app.core.layers import HEATMAP, MASK, PATCHES, Box, OverlayLayer

SALIENCY_COLOURS = {"benign": "greens", "malignant": "reds"}


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
    heatmaps: dict[str, np.ndarray] = field(default_factory=dict)  # layer label -> relative map, image grid
    saliency: dict[str, np.ndarray] = field(default_factory=dict)  # GLAM: class -> map in 0..1, coarse grid
    map_scale: float = 1.0  # image pixels per saliency value
    patches: tuple[Box, ...] = ()  # GLAM: the patch(es) the local network read, image pixels

    @property
    def out_of_distribution(self) -> bool:
        return self.ood_distance is not None and self.ood_limit is not None and self.ood_distance > self.ood_limit

    @property
    def predicted_class(self) -> str | None:
        return None if self.probabilities is None else self.classes[int(np.argmax(self.probabilities))]

    def layers(self) -> list[OverlayLayer]:
        made: list[OverlayLayer] = []
        if self.mask is not None:
            made.append(OverlayLayer("Segmentation", MASK, self.image_identity, data=self.mask,
                                     threshold=self.threshold, opacity=0.6, source=self.model_key))
        target = self.classes[self.target_class] if self.target_class is not None else ""
        for label, values in self.heatmaps.items():
            made.append(OverlayLayer(f"{self.method} {label} ({target})", HEATMAP, self.image_identity,
                                     data=values, relative=True, colormap="viridis", opacity=0.5,
                                     source=self.model_key))
        for name, values in self.saliency.items():
            made.append(OverlayLayer(f"{name.capitalize()} saliency", HEATMAP, self.image_identity, data=values,
                                     colormap=SALIENCY_COLOURS.get(name, "viridis"), opacity=0.5,
                                     scale=self.map_scale, quantity="saliency (not a probability)",
                                     alpha_ramp=1.0,  # as strong as the evidence: faint maps stay faint
                                     source=self.model_key))
        if self.patches:
            made.append(OverlayLayer("Patch map", PATCHES, self.image_identity, boxes=self.patches, opacity=0.9,
                                     source=self.model_key))
        return made
