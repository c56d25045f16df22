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
    link_group: str = ""  # linked viewports repeat gestures within their group (a comparison: per view)


@dataclass(frozen=True)
class Hanging:
    rows: int
    columns: int
    cells: tuple[Cell, ...]
    is_four_view: bool


GRIDS = ("auto", "row", "column")  # how side-by-side images are arranged; the reader cycles through them
# How a mammogram hangs beside its prior: each view above its prior, or the prior's four views beside the current's.
COMPARISON_LAYOUTS = ("current over prior", "prior beside current")


def hang(study: Study, grid: str = "") -> Hanging:
    """The study's hanging. `grid` arranges a side-by-side reading: "auto" (1x2, 2x2, 2x3, 3x3...),
    "row" or "column"; "" keeps one study's series in one row (up to four). A mammogram with its prior
    takes one of COMPARISON_LAYOUTS as `grid` (the first when it names none)."""
    if study.prior is not None:
        return comparison_hanging(study, grid if grid in COMPARISON_LAYOUTS else COMPARISON_LAYOUTS[0])
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


def _four_view_slots(series_list: tuple[Series, ...]) -> tuple[dict[tuple[str, str], Series], list[Series]]:
    """The first series of each of the four screening views, and every other series."""
    chosen: dict[tuple[str, str], Series] = {}
    extras: list[Series] = []
    for series in series_list:
        info = series.first
        slot = (info.laterality, info.view)
        if slot in FOUR_VIEW_SLOTS and info.is_mammogram and slot not in chosen:
            chosen[slot] = series
        else:
            extras.append(series)
    return chosen, extras


def comparison_hanging(study: Study, layout: str) -> Hanging:
    """A mammogram beside its prior. "current over prior": the four views in one row (R CC, L CC, R MLO,
    L MLO; chest walls meeting per view pair), the prior's below each. "prior beside current": the usual
    2x2 of the current on the left, the prior's 2x2 on the right. Every cell says whose it is and the date
    on its second line;
    gestures are linked per view (a view and its prior move together)."""
    prior = study.prior
    current_series = study.series[: len(study.series) - len(prior.series)]
    extras: list[Series] = []
    cells: list[Cell] = []
    for index, (who, series_list, date) in enumerate((("current", current_series, _date_of(current_series)),
                                                      ("prior", prior.series, prior.date))):
        chosen, rest = _four_view_slots(series_list)
        extras += rest
        for slot, (laterality, view) in enumerate(FOUR_VIEW_SLOTS):
            if layout == COMPARISON_LAYOUTS[0]:
                row, column = index, slot
            else:
                row, column = slot // 2, 2 * index + slot % 2
            cells.append(Cell(row=row, column=column, label=f"{laterality} {view}\n{who} {date}".rstrip(),
                              series=chosen.get((laterality, view)), anchor=CHEST_WALL_SIDE[laterality],
                              link_group=f"{laterality} {view}"))
    for index, series in enumerate(extras):
        lat = series.first.laterality
        cells.append(Cell(row=2 + index // 4, column=index % 4, label=series.label, series=series,
                          anchor=CHEST_WALL_SIDE.get(lat or "", "center") if series.first.is_mammogram else "center",
                          link_group=series.label))
    return Hanging(rows=2 + math.ceil(len(extras) / 4), columns=4, cells=tuple(cells), is_four_view=True)


def _date_of(series_list: tuple[Series, ...]) -> str:
    return Study(key="", title="", series=series_list).date


def _four_view(study: Study) -> Hanging:
    chosen, extras = _four_view_slots(study.series)
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
    """'left' or 'right': the image edge breast tissue runs along, where one clearly does (a detector's
    image: the chest wall touches the edge). Otherwise (films digitised with black margins, like
    mini-MIAS) the half of the breast with more tissue: the breast is cut at the middle of what is not
    background and each half's brightness above the background summed; the chest-wall half holds more
    than the nipple's (272 of 274 mini-MIAS views right; the edge rule alone had every padded one wrong)."""
    grey = frame if frame.ndim == 2 else frame.mean(axis=-1)
    step = max(1, grey.shape[0] // 512)
    rows = grey[::step, ::step].astype(np.float32)
    background, bright = np.percentile(rows, 5), np.percentile(rows, 99)
    strip = max(1, rows.shape[1] // 20)
    at_left, at_right = np.mean(rows[:, :strip] > background), np.mean(rows[:, -strip:] > background)
    if abs(at_left - at_right) > 0.25:
        return "left" if at_left > at_right else "right"
    columns = np.flatnonzero((rows > background + 0.1 * (bright - background)).mean(axis=0) > 0.02)
    if columns.size < 2:
        return "left"
    first, last = int(columns[0]), int(columns[-1])
    middle = (first + last + 1) // 2
    above = np.clip(rows - background, 0, None)
    return "left" if above[:, first:middle].sum() >= above[:, middle:last + 1].sum() else "right"


def _first_of(direction: str, letters: str) -> str | None:
    for char in direction.upper():
        if char in letters:
            return char
    return None
