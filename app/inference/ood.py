"""Out-of-distribution guard: does an image look like the images the model learnt from?

The model's pooled head features of its training images are summarised by their mean and principal
axes; an image whose features lie further (Mahalanobis distance in that subspace plus the residual off
it) than 99.5% of held-out training images is flagged, and the app says the result may not apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from app.inference.weights import read_state_dict, write_safetensors

COMPONENTS = 16
QUANTILE = 0.995


@dataclass(frozen=True)
class FeatureDistribution:
    mean: np.ndarray  # (D,)
    axes: np.ndarray  # (K, D) principal axes
    scales: np.ndarray  # (K,) standard deviation along each axis
    residual_scale: float  # typical distance off the subspace
    limit: float  # distances above this are out of distribution

    @classmethod
    def fit(cls, features: np.ndarray, components: int = COMPONENTS, quantile: float = QUANTILE,
            folds: int = 5) -> FeatureDistribution:
        """Fit on all features; the limit comes from held-out distances (each fifth measured against a fit
        on the other four), since images the fit has seen lie closer than new images of the same kind."""
        features = np.asarray(features, np.float64)
        order = np.random.default_rng(0).permutation(len(features))
        held_out = []
        for part in np.array_split(order, folds):
            rest = np.setdiff1d(order, part)
            held_out.append(cls._fit_shape(features[rest], components).distance(features[part]))
        full = cls._fit_shape(features, components)
        limit = float(np.quantile(np.concatenate(held_out), quantile))
        return cls(full.mean, full.axes, full.scales, full.residual_scale, limit)

    @classmethod
    def _fit_shape(cls, features: np.ndarray, components: int) -> FeatureDistribution:
        mean = features.mean(0)
        _, singular, axes = np.linalg.svd(features - mean, full_matrices=False)
        k = min(components, len(singular) - 1)
        scales = np.maximum(singular[:k] / np.sqrt(max(len(features) - 1, 1)), 1e-6)
        partial = cls(mean, axes[:k], scales, 1.0, np.inf)
        residual = float(np.median(partial._parts(features)[1])) or 1.0
        return cls(mean, axes[:k], scales, residual, np.inf)

    def _parts(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        centred = np.atleast_2d(features) - self.mean
        projected = centred @ self.axes.T
        residual = np.linalg.norm(centred - projected @ self.axes, axis=1)
        return projected / self.scales, residual

    def distance(self, features: np.ndarray) -> np.ndarray:
        within, residual = self._parts(features)
        return np.sqrt((within ** 2).sum(1) / len(self.scales) + (residual / self.residual_scale) ** 2)

    def save(self, path: Path) -> str:
        tensors = {"mean": self.mean, "axes": self.axes, "scales": self.scales,
                   "residual_scale": np.array([self.residual_scale]), "limit": np.array([self.limit])}
        return write_safetensors({k: torch.as_tensor(np.asarray(v, np.float32)) for k, v in tensors.items()}, path)

    @classmethod
    def load(cls, path: Path, sha256: str | None) -> FeatureDistribution:
        state = {k: v.numpy().astype(np.float64) for k, v in read_state_dict(path, sha256).items()}
        return cls(state["mean"], state["axes"], state["scales"], float(state["residual_scale"][0]),
                   float(state["limit"][0]))
