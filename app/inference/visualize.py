"""Drawing results pictures: the image as the viewer shows it, blended maps, titled panels side by side."""

from __future__ import annotations

import cv2
import numpy as np

from app.core.image import LoadedImage
from app.core.layers import Box
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


def patch_rgb(image: LoadedImage, box: Box, frame: int = 0, state: ViewportState | None = None) -> np.ndarray:
    """The image under a patch box as RGB uint8, windowed as `state` shows it (the default window
    otherwise): what the local network read, for showing magnified."""
    pixels = image.frame(frame)
    x0, y0 = min(max(round(box.x), 0), image.width - 1), min(max(round(box.y), 0), image.height - 1)
    x1, y1 = max(min(round(box.x + box.width), image.width), x0 + 1), max(min(round(box.y + box.height), image.height), y0 + 1)
    grey = (state or ViewportState(image)).transfer().apply(pixels[y0:y1, x0:x1])
    return np.ascontiguousarray(grey if grey.ndim == 3 else np.repeat(grey[..., None], 3, axis=2))


def scores_title(result: InferenceResult) -> str:
    """The first panel's title: each class with its probability or score."""
    return "  ".join(f"{c} {p:.2f}" for c, p in zip(result.classes, result.probabilities))


def side_by_side(panels: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """RGB panels of equal height, each under its title (each task's picture: tasks/)."""
    return np.hstack([_titled(_fit_height(p, PANEL_HEIGHT), title) for title, p in panels])


def _fit_height(rgb: np.ndarray, height: int) -> np.ndarray:
    width = max(1, round(rgb.shape[1] * height / rgb.shape[0]))
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)


def _titled(rgb: np.ndarray, title: str) -> np.ndarray:
    bar = np.full((28, rgb.shape[1], 3), 24, np.uint8)
    cv2.putText(bar, title[: max(8, rgb.shape[1] // 9)], (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                (235, 235, 235), 1, cv2.LINE_AA)
    return np.vstack([bar, rgb])
