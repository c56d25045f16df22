"""A results picture for one image: the image, its mask outline, and each heatmap, side by side."""

from __future__ import annotations

import cv2
import numpy as np

from app.core.image import LoadedImage
from app.core.layers import Box, heatmap_rgba, mask_contours
from app.core.viewport_state import ViewportState
from app.inference.results import SALIENCY_COLOURS, InferenceResult

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


def patch_rgb(image: LoadedImage, box: Box, frame: int = 0, state: ViewportState | None = None) -> np.ndarray:
    """The image under a patch box as RGB uint8, windowed as `state` shows it (the default window
    otherwise): what the local network read, for showing magnified."""
    pixels = image.frame(frame)
    x0, y0 = min(max(round(box.x), 0), image.width - 1), min(max(round(box.y), 0), image.height - 1)
    x1, y1 = max(min(round(box.x + box.width), image.width), x0 + 1), max(min(round(box.y + box.height), image.height), y0 + 1)
    grey = (state or ViewportState(image)).transfer().apply(pixels[y0:y1, x0:x1])
    return np.ascontiguousarray(grey if grey.ndim == 3 else np.repeat(grey[..., None], 3, axis=2))


def glam_panels(base: np.ndarray, result: InferenceResult) -> list[tuple[str, np.ndarray]]:
    """As GLAM's reference pictures: patch map, benign (greens) and malignant (reds) saliency in [0, 1],
    and the patch itself."""
    boxed = base.copy()
    for box in result.patches:
        cv2.rectangle(boxed, (round(box.x), round(box.y)), (round(box.x + box.width) - 1,
                      round(box.y + box.height) - 1), (255, 210, 0), max(2, base.shape[0] // 300))
    panels = [("patch map", boxed)]
    for name, values in result.saliency.items():
        full = cv2.resize(values, (base.shape[1], base.shape[0]), interpolation=cv2.INTER_NEAREST)
        colours = SALIENCY_COLOURS.get(name, "viridis")
        panels.append((f"{name} saliency 0-1", blend(base, heatmap_rgba(full, (0, 1), colours), 0.7)))
    for box in result.patches[:1]:
        x0, y0 = max(round(box.x), 0), max(round(box.y), 0)
        panels.append(("patch", base[y0:y0 + round(box.height), x0:x0 + round(box.width)]))
    return panels


def result_picture(image: LoadedImage, result: InferenceResult, frame: int = 0) -> np.ndarray:
    """RGB panels of equal height: image (+ mask outline), then one panel per heatmap, titled."""
    base = display_rgb(image, frame)
    panels = [("image", base)]
    if result.saliency:
        panels += glam_panels(base, result)
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
