"""Hanging protocols: which series goes in which cell, and how each image is turned for reading.

Screening mammograms hang as a 2x2 grid, R-CC and L-CC on top, R-MLO and L-MLO below, the right
breast on the left half, every image turned so the two chest walls meet in the middle. Any other
study hangs one viewport per series, side by side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from app.core.image import ImageInfo
from app.core.study import Series, Study

FOUR_VIEW_SLOTS = (("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO"))
# Where a breast's chest wall belongs on screen, and the patient direction that column index
# must then increase towards (PS3.3 C.7.6.1.1.1 Patient Orientation).
CHEST_WALL_SIDE = {"R": "right", "L": "left"}
ROW_DIRECTION = {"R": "P", "L": "A"}
CC_COLUMN_DIRECTION = {"R": "L", "L": "R"}  # lateral side up


@dataclass(frozen=True)
class Cell:
    """One viewport of a hanging: the series it shows (None leaves it empty with its label)."""

    row: int
    column: int
    label: str
    series: Series | None
    anchor: str = "center"  # which image edge sticks to the viewport edge when fitted


@dataclass(frozen=True)
class Hanging:
    rows: int
    columns: int
    cells: tuple[Cell, ...]
    is_four_view: bool


GRIDS = ("auto", "row", "column")  # how side-by-side images are arranged; the reader cycles through them


def hang(study: Study, grid: str = "") -> Hanging:
    """The study's hanging. `grid` arranges a side-by-side reading: "auto" (1x2, 2x2, 2x3, 3x3...),
    "row" or "column"; "" keeps one study's series in one row (up to four)."""
    if study.is_mammography:
        return _four_view(study)
    if grid:
        return grid_hanging(study.series, grid)
    return _side_by_side(study.series)


def grid_shape(count: int, grid: str = "auto") -> tuple[int, int]:
    """(rows, columns) for `count` images: one row, one column, or as square as the count allows."""
    count = max(count, 1)
    if grid == "row":
        return 1, count
    if grid == "column":
        return count, 1
    columns = math.ceil(math.sqrt(count))
    return math.ceil(count / columns), columns


def grid_hanging(series: tuple[Series, ...], grid: str = "auto") -> Hanging:
    rows, columns = grid_shape(len(series), grid)
    cells = tuple(Cell(row=i // columns, column=i % columns, label=s.label, series=s) for i, s in enumerate(series))
    return Hanging(rows=rows, columns=columns, cells=cells, is_four_view=False)


def _four_view(study: Study) -> Hanging:
    chosen: dict[tuple[str, str], Series] = {}
    extras: list[Series] = []
    for series in study.series:
        info = series.first
        slot = (info.laterality, info.view)
        if slot in FOUR_VIEW_SLOTS and info.is_mammogram and slot not in chosen:
            chosen[slot] = series
        else:
            extras.append(series)
    cells = []
    for index, (laterality, view) in enumerate(FOUR_VIEW_SLOTS):
        cells.append(
            Cell(
                row=index // 2,
                column=index % 2,
                label=f"{laterality} {view}",
                series=chosen.get((laterality, view)),
                anchor=CHEST_WALL_SIDE[laterality],
            )
        )
    # Views that are not one of the four (repeats, ML, spot views) are never hidden: they hang below.
    for index, series in enumerate(extras):
        lat = series.first.laterality
        cells.append(
            Cell(row=2 + index // 2, column=index % 2, label=series.label, series=series,
                 anchor=CHEST_WALL_SIDE.get(lat or "", "center") if series.first.is_mammogram else "center")
        )
    rows = 2 + math.ceil(len(extras) / 2)
    return Hanging(rows=rows, columns=2, cells=tuple(cells), is_four_view=True)


def _side_by_side(series: tuple[Series, ...]) -> Hanging:
    count = max(len(series), 1)
    columns = count if count <= 4 else math.ceil(math.sqrt(count))
    cells = tuple(
        Cell(row=i // columns, column=i % columns, label=s.label, series=s) for i, s in enumerate(series)
    )
    return Hanging(rows=math.ceil(count / columns), columns=columns, cells=cells, is_four_view=False)


def reading_flips(info: ImageInfo, frame: np.ndarray) -> tuple[bool, bool]:
    """(flip horizontally, flip vertically) to show a mammogram with its chest wall on the inner side.

    Patient Orientation decides where the file gives it; otherwise the side where tissue touches
    the image edge is taken as the chest wall. Only mammograms are turned: any other image, with a
    laterality or not, is shown as stored.
    """
    if not info.is_mammogram or info.laterality not in ROW_DIRECTION:
        return False, False
    want_row = ROW_DIRECTION[info.laterality]
    orientation = info.patient_orientation
    row_dir = _first_of(orientation[0], "AP") if orientation else None
    if row_dir:
        flip_h = row_dir != want_row
    else:
        flip_h = chest_wall_side(frame) != CHEST_WALL_SIDE[info.laterality]
    flip_v = False
    if orientation:
        col_dir = orientation[1]
        if info.view == "CC":
            lateral = _first_of(col_dir, "LR")
            flip_v = lateral is not None and lateral != CC_COLUMN_DIRECTION[info.laterality]
        elif info.view == "MLO":
            flip_v = _first_of(col_dir, "HF") == "H"
    return flip_h, flip_v


def stored_chest_wall_side(info: ImageInfo, frame: np.ndarray) -> str | None:
    """'left' or 'right': where the chest wall lies in the stored image of a view with a laterality
    (the side the hanging turns to the middle of the screen), None without one. The hanging and
    GLAM's crop both ask this, so a right view stored mirrored is turned and cropped alike."""
    if info.laterality not in CHEST_WALL_SIDE:
        return None
    flip_h, _ = reading_flips(info, frame)
    side = CHEST_WALL_SIDE[info.laterality]
    return ("left" if side == "right" else "right") if flip_h else side


def chest_wall_side(frame: np.ndarray) -> str:
    """'left' or 'right': the image edge with more breast tissue along it."""
    grey = frame if frame.ndim == 2 else frame.mean(axis=-1)
    step = max(1, grey.shape[0] // 512)
    rows = grey[::step]
    strip = max(1, grey.shape[1] // 20)
    background = np.percentile(rows, 5)
    left = np.mean(rows[:, :strip] > background)
    right = np.mean(rows[:, -strip:] > background)
    return "left" if left >= right else "right"


def _first_of(direction: str, letters: str) -> str | None:
    for char in direction.upper():
        if char in letters:
            return char
    return None
