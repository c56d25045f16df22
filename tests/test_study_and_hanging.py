"""Grouping files into studies and hanging them for reading."""

import numpy as np
import pytest
from pydicom.uid import generate_uid

from app.core.hanging import chest_wall_side, hang, reading_flips
from app.core.image import ImageInfo
from app.core.study import mammo_tag_from_name
from app.io.study_loader import decode_image, scan
from tests.dicom_factory import four_view_phantom, write_dicom


@pytest.mark.parametrize("name, expected", [
    ("0_L-CC.png", ("L", "CC", "0")),
    ("L_CC.dcm", ("L", "CC", "")),
    ("RMLO.png", ("R", "MLO", "")),
    ("patient7 r_mlo.jpg", ("R", "MLO", "patient7")),
    ("ccl.png", None),
    ("scroll.png", None),
])
def test_mammo_tags_from_names(name, expected):
    assert mammo_tag_from_name(name) == expected


def test_dicom_files_group_by_study_uid_and_mr_slices_stack(tmp_path):
    study_a, study_b, series = generate_uid(), generate_uid(), generate_uid()
    for i in range(3):
        write_dicom(tmp_path / f"mr{i}.dcm", np.full((8, 8), i, np.uint16), Modality="MR",
                    StudyInstanceUID=study_a, SeriesInstanceUID=series, InstanceNumber=3 - i)
    write_dicom(tmp_path / "us.dcm", np.zeros((8, 8), np.uint8), Modality="US", StudyInstanceUID=study_b)
    result = scan([tmp_path])
    assert sorted(len(s.images) for s in result.studies) == [1, 3]
    mr = next(s for s in result.studies if s.modalities == ("MR",))
    assert len(mr.series) == 1  # one viewport with a frame slider
    image, problems = __import__("app.io.study_loader", fromlist=["decode_series"]).decode_series(mr.series[0])
    assert image.frame_count == 3 and not problems
    assert [int(f[0, 0]) for f in image.frames] == [2, 1, 0]  # ordered by InstanceNumber


def test_png_exams_group_by_folder_and_name_prefix(tmp_path):
    import cv2

    for exam in ("1", "2"):
        for view in ("L-CC", "R-CC", "L-MLO", "R-MLO"):
            cv2.imwrite(str(tmp_path / f"{exam}_{view}.png"), np.zeros((8, 8), np.uint16))
    cv2.imwrite(str(tmp_path / "other.png"), np.zeros((8, 8), np.uint8))
    studies = scan([tmp_path]).studies
    assert sorted(len(s.images) for s in studies) == [1, 4, 4]
    assert all(s.is_mammography for s in studies if len(s.images) == 4)


def test_four_view_hanging_puts_right_breast_left_and_cc_on_top(tmp_path):
    paths = four_view_phantom(tmp_path)
    del paths  # the study is found by scanning the folder
    hanging = hang(scan([tmp_path]).studies[0])
    assert hanging.is_four_view and (hanging.rows, hanging.columns) == (2, 2)
    placed = {(c.row, c.column): (c.label, c.series.first.laterality, c.series.first.view, c.anchor)
              for c in hanging.cells}
    assert placed == {(0, 0): ("R CC", "R", "CC", "right"), (0, 1): ("L CC", "L", "CC", "left"),
                      (1, 0): ("R MLO", "R", "MLO", "right"), (1, 1): ("L MLO", "L", "MLO", "left")}


def test_missing_views_leave_labelled_empty_cells(tmp_path):
    paths = four_view_phantom(tmp_path)
    paths["L MLO"].unlink()
    hanging = hang(scan([tmp_path]).studies[0])
    empty = [c.label for c in hanging.cells if c.series is None]
    assert empty == ["L MLO"] and len(hanging.cells) == 4


def test_extra_views_are_hung_below_not_dropped(tmp_path):
    paths = four_view_phantom(tmp_path)
    study_uid = __import__("pydicom").dcmread(paths["R CC"]).StudyInstanceUID
    write_dicom(tmp_path / "repeat.dcm", np.zeros((8, 8), np.uint16), Modality="MG", StudyInstanceUID=study_uid,
                ImageLaterality="R", ViewPosition="CC", InstanceNumber=9)
    hanging = hang(scan([tmp_path]).studies[0])
    assert hanging.rows == 3 and len(hanging.cells) == 5


def test_non_mammography_hangs_side_by_side(tmp_path):
    study = generate_uid()
    for i in range(3):
        write_dicom(tmp_path / f"us{i}.dcm", np.zeros((8, 8), np.uint8), Modality="US", StudyInstanceUID=study)
    hanging = hang(scan([tmp_path]).studies[0])
    assert not hanging.is_four_view and (hanging.rows, hanging.columns) == (1, 3)


def test_flips_follow_patient_orientation(tmp_path):
    paths = four_view_phantom(tmp_path)
    flips = {}
    for label, path in paths.items():
        image = decode_image(scan([path]).studies[0].images[0])
        flips[label] = reading_flips(image.info, image.frame(0))
    # stored chest wall at column 0 (rows run anterior): right breasts turn round, left stay
    assert flips == {"R CC": (True, False), "L CC": (False, False), "R MLO": (True, False), "L MLO": (False, False)}


def test_mlo_stored_head_down_is_flipped_vertically(tmp_path):
    info = ImageInfo(path=tmp_path / "x", source_format="dicom", laterality="L", view="MLO",
                     patient_orientation=("A", "H"))
    assert reading_flips(info, np.zeros((4, 4))) == (False, True)


def test_without_orientation_the_chest_wall_is_found_from_the_pixels(tmp_path):
    frame = np.zeros((100, 80), np.uint16)
    frame[10:90, 40:] = 1500  # tissue touching the right edge
    assert chest_wall_side(frame) == "right"
    left_breast = ImageInfo(path=tmp_path / "0_L-CC.png", source_format="png", laterality="L", view="CC")
    assert reading_flips(left_breast, frame) == (True, False)
    right_breast = ImageInfo(path=tmp_path / "0_R-CC.png", source_format="png", laterality="R", view="CC")
    assert reading_flips(right_breast, frame) == (False, False)
