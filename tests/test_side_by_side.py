"""Single images read side by side: several studies selected (or loose images opened) share the reading area."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from app.core.hanging import grid_hanging, grid_shape, hang
from app.core.study import can_read_side_by_side, side_by_side
from tests.test_ai_ui import models  # noqa: F401 (fixture: toy model packages)
from tests.test_ui import open_and_wait


def test_grids_are_chosen_by_count_and_can_be_one_row_or_one_column():
    assert [grid_shape(n) for n in (1, 2, 3, 4, 5, 9)] == [(1, 1), (1, 2), (2, 2), (2, 2), (2, 3), (3, 3)]
    assert grid_shape(3, "row") == (1, 3) and grid_shape(3, "column") == (3, 1)


def loose_images(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"scan{index}.png"
        cv2.imwrite(str(path), np.random.default_rng(index).integers(0, 255, (60 + 10 * index, 80), np.uint8))
        paths.append(path)
    return paths


def test_several_loose_images_open_together_in_a_grid_each_in_its_own_viewport(qtbot, main_window, tmp_path):
    paths = loose_images(tmp_path / "in", 3)
    open_and_wait(qtbot, main_window, [tmp_path / "in"])
    view = main_window.study_view
    assert len(main_window.session.studies) == 3 and main_window.session.shown.is_side_by_side
    shown = [v.state.image.info.path for v in view.viewports if v.state is not None]
    assert sorted(shown) == sorted(paths)
    cells = {(view.grid.getItemPosition(view.grid.indexOf(v))[:2]) for v in view.viewports}
    assert cells == {(0, 0), (0, 1), (1, 0)}  # 2x2, chosen automatically
    main_window.actions["grid"].trigger()  # G: one row
    qtbot.waitUntil(lambda: main_window.session.is_fully_painted and not main_window.loader.busy, timeout=20000)
    assert {view.grid.getItemPosition(view.grid.indexOf(v))[:2] for v in view.viewports} == {(0, 0), (0, 1), (0, 2)}


def test_selecting_one_study_shows_it_alone_and_several_side_by_side(qtbot, main_window, tmp_path):
    loose_images(tmp_path / "in", 3)
    open_and_wait(qtbot, main_window, [tmp_path / "in"])
    main_window.study_list.setCurrentRow(1)  # a click: that study alone
    qtbot.waitUntil(lambda: main_window.session.is_fully_painted and not main_window.loader.busy, timeout=20000)
    assert not main_window.session.shown.is_side_by_side and len(main_window.study_view.viewports) == 1
    main_window.study_list.item(2).setSelected(True)  # Ctrl+click a second one
    qtbot.waitUntil(lambda: main_window.session.is_fully_painted and not main_window.loader.busy, timeout=20000)
    assert main_window.session.shown.is_side_by_side and len(main_window.study_view.viewports) == 2


def test_link_repeats_zoom_and_window_in_every_side_by_side_viewport(qtbot, main_window, tmp_path):
    loose_images(tmp_path / "in", 2)
    open_and_wait(qtbot, main_window, [tmp_path / "in"])
    first, second = (v.state for v in main_window.study_view.viewports)
    assert not main_window.actions["link"].isChecked()  # not linked by default, unlike a mammogram
    before = second.zoom_text()
    first.zoom_by(2.0)
    assert second.zoom_text() == before
    main_window.actions["link"].trigger()  # L
    first.zoom_by(2.0)
    assert second.zoom_text() != before


def test_a_mammogram_is_never_merged_and_keeps_its_hanging(tmp_path):
    from app.io.study_loader import scan
    from tests.dicom_factory import four_view_phantom

    four_view_phantom(tmp_path / "mg")
    loose_images(tmp_path / "us", 1)
    studies = scan([tmp_path]).studies
    mammo = next(s for s in studies if s.is_mammography)
    assert not can_read_side_by_side(studies) and hang(mammo).is_four_view
    with pytest.raises(ValueError):
        side_by_side(studies)
    assert grid_hanging(next(s for s in studies if not s.is_mammography).series).rows == 1


def test_each_side_by_side_image_gets_its_own_ai_layers(qtbot, main_window, models, tmp_path):
    paths = loose_images(tmp_path / "in", 2)
    main_window.ai.reload_models("toy-us-cls")  # PNGs name no modality: the reader's choice reads them
    open_and_wait(qtbot, main_window, [tmp_path / "in"])
    with qtbot.waitSignal(main_window.ai.run_finished, timeout=60000):
        main_window.actions["run_ai"].trigger()
    for viewport in main_window.study_view.viewports:
        identity = viewport.state.image.info.identity
        assert identity in main_window.session.results
        assert viewport.overlays and all(layer.image_identity == identity for layer in viewport.overlays)
    assert {Path(v.state.image.info.path) for v in main_window.study_view.viewports} == set(paths)
