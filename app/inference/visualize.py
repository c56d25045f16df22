"""A results picture for one image: the image, its mask outline, and each heatmap, side by side."""

from __future__ import annotations

import cv2
import numpy as np

from app.core.image import LoadedImage
from app.core.layers import heatmap_rgba, mask_contours
from app.core.viewport_state import ViewportState
from app.inference.results import InferenceResult

PANEL_HEIGHT = 512


def display_rgb(image: LoadedImage, frame: int = 0) -> np.ndarray:
    """The frame as the viewer shows it by default (first preset, no flips), as RGB uint8."""
    state = ViewportState(image)
    pixels = image.frame(frame)
    grey = state.transfer().apply(pixels)
    return grey if grey.ndim == 3 else np.repeat(grey[..., None], 3, axis=2)


def blend(base: np.ndarray, rgba: np.ndarray, opacity: float) -> np.ndarray:
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0 * opacity
    return (base * (1 - alpha) + rgba[..., :3] * alpha).astype(np.uint8)


def result_picture(image: LoadedImage, result: InferenceResult, frame: int = 0) -> np.ndarray:
    """RGB panels of equal height: image (+ mask outline), then one panel per heatmap, titled."""
    base = display_rgb(image, frame)
    panels = [("image", base)]
    if result.mask is not None:
        outlined = base.copy()
        for contour in mask_contours(result.mask, result.threshold):
            cv2.polylines(outlined, [np.round(contour - 0.5).astype(np.int32)], True, (255, 64, 64), 2)
        panels.append((f"mask p>={result.threshold:.2f}", outlined))
    for label, values in result.heatmaps.items():
        panels.append((f"{result.method} {label} (relative)", blend(base, heatmap_rgba(values, (0, 1), "viridis"), 0.6)))
    if result.probabilities is not None:
        caption = "  ".join(f"{c} {p:.2f}" for c, p in zip(result.classes, result.probabilities))
        panels[0] = (caption, panels[0][1])
    return np.hstack([_titled(_fit_height(p, PANEL_HEIGHT), title) for title, p in panels])


def _fit_height(rgb: np.ndarray, height: int) -> np.ndarray:
    width = max(1, round(rgb.shape[1] * height / rgb.shape[0]))
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)


def _titled(rgb: np.ndarray, title: str) -> np.ndarray:
    bar = np.full((28, rgb.shape[1], 3), 24, np.uint8)
    cv2.putText(bar, title[: max(8, rgb.shape[1] // 9)], (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                (235, 235, 235), 1, cv2.LINE_AA)
    return np.vstack([bar, rgb])
