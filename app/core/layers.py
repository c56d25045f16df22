"""Overlay layers (masks, heatmaps, patch maps) over one image, and the stack of them for a study.

A layer owns its visibility, opacity, colour map and threshold, validates them and says when
they change; views listen and never keep their own copy. Layer data lie in the image's pixel
grid (stored orientation), so views place them exactly like the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from app.core.colormaps import NAMES as COLORMAP_NAMES
from app.core.colormaps import colormap_table
from app.core.observable import Signal

HEATMAP, MASK, PATCHES = "heatmap", "mask", "patches"
MASK_COLOUR = (255, 64, 64)
MASK_FILL_ALPHA = 110
HEATMAP_ALPHA_RAMP = 0.25  # values below this fade to transparent so low evidence shows the image


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    width: float
    height: float


class OverlayLayer:
    """One overlay; `changed(layer, what)` fires after each change ('visible', 'opacity', ...)."""

    def __init__(self, name: str, kind: str, image_identity: str, *, data: np.ndarray | None = None,
                 boxes: tuple[Box, ...] = (), value_range: tuple[float, float] = (0.0, 1.0),
                 relative: bool = False, colormap: str = "viridis", opacity: float = 0.5,
                 threshold: float = 0.5, scale: float = 1.0, quantity: str = "probability",
                 alpha_ramp: float = HEATMAP_ALPHA_RAMP, source: str = "") -> None:
        if kind not in (HEATMAP, MASK, PATCHES):
            raise ValueError(f"unknown layer kind {kind!r}")
        if kind != PATCHES and (data is None or data.ndim != 2):
            raise ValueError(f"a {kind} layer needs a 2-D map, got {None if data is None else data.shape}")
        self.name, self.kind, self.image_identity, self.source = name, kind, image_identity, source
        self.data = None if data is None else np.asarray(data, dtype=np.float32)
        self.boxes = tuple(boxes)
        self.value_range = value_range
        self.relative = relative
        self.quantity = quantity  # what an absolute map's values are, for its legend
        self.alpha_ramp = float(alpha_ramp)  # share of the range over which colour fades in from transparent
        self.scale = float(scale)  # image pixels per data value (coarse maps are not blown up in memory)
        if self.scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self._visible, self._opacity, self._colormap, self._threshold = True, 0.5, "viridis", 0.5
        self.changed = Signal()
        with self.changed.blocker():
            self.opacity, self.colormap, self.threshold = opacity, colormap, threshold

    # ---- validated properties ----------------------------------------------------------------
    @property
    def visible(self) -> bool:
        return self._visible

    @visible.setter
    def visible(self, value: bool) -> None:
        self._set("_visible", bool(value), "visible")

    @property
    def opacity(self) -> float:
        return self._opacity

    @opacity.setter
    def opacity(self, value: float) -> None:
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"opacity must be within 0..1, got {value}")
        self._set("_opacity", float(value), "opacity")

    @property
    def colormap(self) -> str:
        return self._colormap

    @colormap.setter
    def colormap(self, name: str) -> None:
        if name not in COLORMAP_NAMES:
            raise ValueError(f"unknown colour map {name!r}")
        self._set("_colormap", name, "colormap")

    @property
    def threshold(self) -> float:
        return self._threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"threshold must be within 0..1, got {value}")
        self._set("_threshold", float(value), "threshold")

    def _set(self, attribute: str, value, what: str) -> None:
        if getattr(self, attribute) != value:
            setattr(self, attribute, value)
            self.changed.emit(self, what)

    # ---- what to draw ----------------------------------------------------------------------------
    @property
    def range_text(self) -> str:
        lo, hi = self.value_range
        if self.relative:
            return "relative: low to high (not a probability)"
        return f"{self.quantity} {lo:g} to {hi:g}"

    def rgba(self) -> np.ndarray:
        """(H, W, 4) uint8 to draw under the layer's opacity; empty for patch layers."""
        if self.kind == HEATMAP:
            return heatmap_rgba(self.data, self.value_range, self.colormap, self.alpha_ramp)
        if self.kind == MASK:
            return mask_rgba(self.data, self.threshold)
        return np.zeros((0, 0, 4), np.uint8)

    def display_rgba(self, max_side: int) -> tuple[np.ndarray, tuple[float, float]]:
        """`rgba()` of the map shrunk so its longer side is at most `max_side` (screens show no more),
        with the (x, y) scale from its pixels back to the image's."""
        if self.data is None or max(self.data.shape) <= max_side:
            return self.rgba(), (self.scale, self.scale)
        height, width = self.data.shape
        factor = max_side / max(height, width)
        small_h, small_w = max(1, round(height * factor)), max(1, round(width * factor))
        small = cv2.resize(self.data, (small_w, small_h), interpolation=cv2.INTER_AREA)
        rgba = (heatmap_rgba(small, self.value_range, self.colormap, self.alpha_ramp) if self.kind == HEATMAP
                else mask_rgba(small, self.threshold))
        return rgba, (self.scale * width / small_w, self.scale * height / small_h)

    def contours(self) -> list[np.ndarray]:
        """Outlines of the thresholded mask, or of the patches, as (N, 2) x/y point arrays."""
        if self.kind == MASK:
            return [c * self.scale for c in mask_contours(self.data, self.threshold)]
        if self.kind == PATCHES:
            return [np.array([[b.x, b.y], [b.x + b.width, b.y], [b.x + b.width, b.y + b.height],
                              [b.x, b.y + b.height], [b.x, b.y]], dtype=np.float32) for b in self.boxes]
        return []


@lru_cache(maxsize=None)
def _heatmap_table(colormap: str, ramp: float) -> np.ndarray:
    """(256,) uint32: the colour map's RGBA per level, alpha ramping up over the lowest levels."""
    table = np.empty((256, 4), np.uint8)
    table[:, :3] = colormap_table(colormap)
    table[:, 3] = np.rint(np.clip(np.arange(256) / 255.0 / max(ramp, 1e-6), 0.0, 1.0) * 255)
    packed = table.view(np.uint32).ravel()
    packed.setflags(write=False)
    return packed


def heatmap_rgba(values: np.ndarray, value_range: tuple[float, float], colormap: str,
                 alpha_ramp: float = HEATMAP_ALPHA_RAMP) -> np.ndarray:
    """Values to 256 levels in float32, then one table lookup per pixel (RGBA packed as uint32)."""
    lo, hi = value_range
    gain = np.float32(255.0 / ((hi - lo) or 1.0))
    levels = np.multiply(values, gain, dtype=np.float32)
    levels -= np.float32(lo) * gain
    np.clip(levels, 0, 255, out=levels)
    np.rint(levels, out=levels)
    return _heatmap_table(colormap, alpha_ramp)[levels.astype(np.uint8)].view(np.uint8).reshape(*values.shape, 4)


def mask_rgba(probability: np.ndarray, threshold: float) -> np.ndarray:
    inside = probability >= threshold
    rgba = np.zeros((*probability.shape, 4), np.uint8)
    rgba[inside] = (*MASK_COLOUR, MASK_FILL_ALPHA)
    return rgba


def mask_contours(probability: np.ndarray, threshold: float) -> list[np.ndarray]:
    binary = (probability >= threshold).astype(np.uint8)
    found, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    # pixel centres lie at +0.5 in the image item's coordinates
    return [np.vstack([c[:, 0, :], c[:1, 0, :]]).astype(np.float32) + 0.5 for c in found if len(c) >= 2]


class LayerStack:
    """All overlay layers of the open study; `added(layer)`, `removed(layer)`, `hidden_changed(bool)`."""

    def __init__(self) -> None:
        self.layers: list[OverlayLayer] = []
        self._all_hidden = False
        self.added, self.removed, self.hidden_changed = Signal(), Signal(), Signal()

    @property
    def all_hidden(self) -> bool:
        return self._all_hidden

    def set_all_hidden(self, hidden: bool) -> None:
        if hidden != self._all_hidden:
            self._all_hidden = hidden
            self.hidden_changed.emit(hidden)

    def for_image(self, image_identity: str) -> list[OverlayLayer]:
        return [layer for layer in self.layers if layer.image_identity == image_identity]

    def replace(self, image_identity: str, source: str, layers: list[OverlayLayer]) -> None:
        """Swap the layers one model made for one image (a new run replaces the old one)."""
        for old in [l for l in self.layers if l.image_identity == image_identity and l.source == source]:
            self.layers.remove(old)
            self.removed.emit(old)
        for layer in layers:
            self.layers.append(layer)
            self.added.emit(layer)

    def clear(self) -> None:
        for layer in list(self.layers):
            self.layers.remove(layer)
            self.removed.emit(layer)
