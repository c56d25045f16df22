"""GLAM cropping: the breast's bounding box, and its far points in the model's frame.

The breast is the largest 4-connected part of `pixels > background` after eroding it (cross
element, zero border) and dilating it back; the crop is its bounding box with a buffer at the top,
the bottom and the side away from the chest wall. Right views are mirrored so that every chest
wall lies at x = 0 ("the model's frame"). The extreme points are given the way the published GLAM
preprocessing writes them, so that `tests/test_glam.py` can compare with its figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


@dataclass(frozen=True)
class CropSettings:
    erode_iterations: int = 100  # at the official ~0.1 mm pixels; scale with the pixel size
    buffer: int = 50
    background: float = 0.0  # pixels above this share of the view's maximum belong to the breast mask


@dataclass(frozen=True)
class BreastCrop:
    """Where the breast is, in the source image (rows y0:y1, columns x0:x1) and in the model's frame."""

    window_location: tuple[int, int, int, int]  # (y0, y1, x0, x1) in the source image
    mirrored: bool  # right views: the crop is flipped left-right to put the chest wall at x = 0
    rightmost_points: tuple[tuple[int, int], int]  # ((first row, last row), column), model's frame
    bottommost_points: tuple[int, tuple[int, int]]  # (row, (first column, last column)), model's frame

    @property
    def shape(self) -> tuple[int, int]:
        y0, y1, x0, x1 = self.window_location
        return y1 - y0, x1 - x0

    def cut(self, pixels: np.ndarray) -> np.ndarray:
        """The cropped pixels in the model's frame (chest wall at x = 0)."""
        y0, y1, x0, x1 = self.window_location
        cropped = pixels[y0:y1, x0:x1]
        return cropped[:, ::-1] if self.mirrored else cropped


def breast_mask(pixels: np.ndarray, settings: CropSettings) -> np.ndarray:
    """The largest connected part of the thresholded image, eroded then dilated (uint8 0/1)."""
    level = settings.background * float(pixels.max()) if settings.background else 0.0
    mask = (pixels > level).astype(np.uint8)
    iterations = settings.erode_iterations
    if iterations:
        mask = cv2.erode(mask, CROSS, iterations=iterations, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
    if count < 2:
        raise ValueError("no breast found: the image is empty after removing the background")
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    mask = (labels == largest).astype(np.uint8)
    if iterations:
        mask = cv2.dilate(mask, CROSS, iterations=iterations)
    return mask


def crop_breast(pixels: np.ndarray, right_view: bool, settings: CropSettings = CropSettings(),
                mask: np.ndarray | None = None) -> BreastCrop:
    """Crop one view; `right_view` says the chest wall is on the image's right (R views as displayed);
    `mask`: its `breast_mask` when already computed."""
    mask = breast_mask(pixels, settings) if mask is None else mask
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    height, width = mask.shape
    y0, y1 = max(int(rows[0]) - settings.buffer, 0), min(int(rows[-1]) + 1 + settings.buffer, height)
    x0, x1 = int(cols[0]), int(cols[-1]) + 1
    if right_view and x0 > 0:  # buffer on the side away from the chest wall
        x0 = max(x0 - settings.buffer, 0)
    elif not right_view and x1 < width:
        x1 = min(x1 + settings.buffer, width)
    cropped = mask[y0:y1, x0:x1]

    def frame_x(columns: np.ndarray) -> np.ndarray:
        # As published, mirrored columns are counted from the crop's right edge (x1 - x), one more
        # than a plain left-right flip would give; only these reported points use it.
        return (x1 - x0) - columns if right_view else columns

    bottom = int(np.flatnonzero(cropped.any(axis=1))[-1])
    bottom_x = np.sort(frame_x(np.flatnonzero(cropped[bottom])))
    in_frame_cols = frame_x(np.flatnonzero(cropped.any(axis=0)))
    right_col = int(in_frame_cols.max())
    source_col = int((x1 - x0) - right_col) if right_view else right_col
    right_rows = np.flatnonzero(cropped[:, source_col])
    return BreastCrop(window_location=(y0, y1, x0, x1), mirrored=right_view,
                      rightmost_points=((int(right_rows[0]), int(right_rows[-1])), right_col),
                      bottommost_points=(bottom, (int(bottom_x[0]), int(bottom_x[-1]))))
