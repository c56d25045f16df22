"""The GLAM input window: where it goes on the cropped breast, the standardised tensor, and the way
back from window coordinates to the source image's pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.inference.glam.crop import BreastCrop


def best_center(crop: BreastCrop, view: str, window: tuple[int, int], mask: np.ndarray | None = None
                ) -> tuple[int, int]:
    """The window centre (row, column) in the model's frame, as the published preprocessing gives it.

    The window's far edge is pinned one pixel inside the rightmost breast point (both views); MLO
    views pin its bottom the same way to the bottommost point. CC rows take the position that holds
    the most breast pixels (`mask`, model's frame), the middle one among equals.
    """
    window_h, window_w = window
    column = crop.rightmost_points[1] - window_w // 2 - 1
    if view == "MLO":
        return crop.bottommost_points[0] - window_h // 2 - 1, column
    height = crop.shape[0]
    if mask is None or height <= window_h:
        tops = (height - window_h, 0) if height <= window_h else (0, height - window_h)
        best_tops = np.arange(min(tops), max(tops) + 1)
    else:
        rows = np.concatenate([[0], np.cumsum(mask.sum(axis=1, dtype=np.int64))])
        sums = rows[window_h:] - rows[:-window_h]
        best_tops = np.flatnonzero(sums == sums.max())
    top = int(np.floor((best_tops[0] + best_tops[-1]) / 2))
    return top + window_h // 2, column


@dataclass(frozen=True)
class WindowPlacement:
    """Window rows/columns [top, top + height) x [left, left + width) of the cropped view, model's frame;
    negative or past-the-end parts are zero padding."""

    crop: BreastCrop
    top: int
    left: int
    size: tuple[int, int]

    def source_box(self, row: int, col: int, height: int, width: int) -> tuple[float, float, float, float]:
        """A window-frame box as (x, y, width, height) in the source image."""
        y0, _, x0, x1 = self.crop.window_location
        frame_row, frame_col = row + self.top, col + self.left
        source_x = (x1 - x0) - (frame_col + width) if self.crop.mirrored else frame_col
        return float(x0 + source_x), float(y0 + frame_row), float(width), float(height)

    def to_source(self, values: np.ndarray, source_shape: tuple[int, int], stride: int = 1) -> np.ndarray:
        """A map over the window (any multiple of its size divided by `stride`) on the source image's grid
        sampled every `stride` pixels (zeros outside the crop)."""
        window_h, window_w = self.size
        if values.shape != (window_h // stride, window_w // stride):
            raise ValueError(f"map of shape {values.shape} does not cover the window at stride {stride}")
        out = np.zeros((-(-source_shape[0] // stride), -(-source_shape[1] // stride)), np.float32)
        y0, y1, x0, x1 = self.crop.window_location
        rows = np.arange(y0 // stride, -(-y1 // stride)) * stride + stride // 2
        cols = np.arange(x0 // stride, -(-x1 // stride)) * stride + stride // 2
        frame_rows = rows - y0 - self.top
        frame_cols = cols - x0
        if self.crop.mirrored:
            frame_cols = (x1 - x0 - 1) - frame_cols
        frame_cols = frame_cols - self.left
        keep_r = (frame_rows >= 0) & (frame_rows < window_h) & (rows < y1)
        keep_c = (frame_cols >= 0) & (frame_cols < window_w) & (cols < x1)
        block = values[np.ix_(frame_rows[keep_r] // stride, frame_cols[keep_c] // stride)]
        out[np.ix_((rows[keep_r] // stride), (cols[keep_c] // stride))] = block
        return out


def place_window(crop: BreastCrop, view: str, window: tuple[int, int], center: tuple[int, int]
                 ) -> WindowPlacement:
    """Where the window lies on the cropped view. Where the view is smaller than the window it is
    zero-padded (CC rows on both sides, MLO rows below, columns on the side away from the chest
    wall) and the centre does not matter; otherwise the window is centred there, kept inside."""
    height, width = crop.shape
    window_h, window_w = window

    def start(size: int, length: int, centre: int, both_sides: bool) -> int:
        if size <= length:
            return -((length - size) // 2) if both_sides else 0
        return int(np.clip(centre - length // 2, 0, size - length))

    return WindowPlacement(crop, top=start(height, window_h, center[0], view != "MLO"),
                           left=start(width, window_w, center[1], False), size=window)


def window_pixels(view_pixels: np.ndarray, placement: WindowPlacement) -> np.ndarray:
    """The window's pixels (float32, zero padding) in the model's frame."""
    frame = placement.crop.cut(view_pixels)
    window_h, window_w = placement.size
    out = np.zeros((window_h, window_w), np.float32)
    top, left = placement.top, placement.left
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + window_h, frame.shape[0]), min(left + window_w, frame.shape[1])
    out[r0 - top:r1 - top, c0 - left:c1 - left] = frame[r0:r1, c0:c1]
    return out


def standardise(window: np.ndarray) -> np.ndarray:
    """Subtract the window's mean and divide by its standard deviation (at least 1e-5), padding included."""
    window = window.astype(np.float32, copy=False)
    return (window - window.mean()) / max(float(window.std()), 1e-5)
