"""Every DICOM image shown the way the standard says, or refused with a reason: the conformance
corpus file by file, and one test for each rule that was once broken."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_presentation_lut

from app.core.display import Window, auto_window
from app.core.hanging import reading_flips
from app.core.viewport_state import ViewportState
from app.io.errors import StudyLoadError
from app.io.study_loader import decode_image, read_info, scan
from tests.dicom_conformance import (
    PYDICOM_FILES,
    _gradient,
    corpus_files,
    deflated_image_frame_file,
    generated_files,
    j2k_with_negative_values_header_unsigned,
    judge,
    our_rendering,
)
from tests.dicom_factory import write_dicom


def load(path):
    return decode_image(read_info(path))


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_file_is_shown_right_or_refused_with_a_reason(path):
    verdict = judge(path)
    assert verdict.ok, (verdict.outcome, verdict.detail)


def test_files_made_for_each_display_rule_are_shown_right(tmp_path):
    verdicts = [judge(p) for p in generated_files(tmp_path)]
    wrong = [(v.path.name, v.outcome, v.detail) for v in verdicts if v.outcome != "shown right"]
    assert len(verdicts) >= 19 and not wrong


@pytest.mark.parametrize(
    ("photometric", "shape", "inverse"),
    [
        ("MONOCHROME2", None, False),
        ("MONOCHROME2", "IDENTITY", False),
        ("MONOCHROME2", "INVERSE", True),  # the one combination that adds an inversion (C.11.6)
        ("MONOCHROME1", None, True),
        ("MONOCHROME1", "INVERSE", True),  # DX/MG: INVERSE accompanies MONOCHROME1, one inversion (C.8.11.1.1.1)
        ("MONOCHROME1", "IDENTITY", True),  # IDENTITY "other than to account for" MONOCHROME1
    ],
)
def test_photometric_and_presentation_lut_shape_make_one_inversion_at_most(tmp_path, photometric, shape, inverse):
    pixels = np.array([[0, 1000, 4095]], np.uint16)
    extra = {"PresentationLUTShape": shape} if shape else {}
    path = write_dicom(tmp_path / "dx.dcm", pixels, Modality="DX", PhotometricInterpretation=photometric,
                       WindowCenter=2048, WindowWidth=4096, BitsStored=12, HighBit=11, **extra)
    image = load(path)
    grey = ViewportState(image).transfer().apply(pixels[0])
    assert image.info.presentation_inverse is inverse
    assert bool(grey[0] > grey[-1]) is inverse  # stored 0 is white exactly when inverted
    if photometric == "MONOCHROME2":  # where pydicom's apply_presentation_lut applies, it agrees
        p_values = apply_presentation_lut(pixels[0].astype(float), pydicom.dcmread(path))
        assert np.corrcoef(p_values, grey.astype(float))[0, 1] > 0.99


def test_dx_monochrome1_with_inverse_shape_shows_bone_white(tmp_path):
    """The radiograph that was shown un-inverted: low stored values (bone in MONOCHROME1) are bright."""
    g = _gradient()
    path = write_dicom(tmp_path / "chest.dcm", g, Modality="DX", PhotometricInterpretation="MONOCHROME1",
                       PresentationLUTShape="INVERSE", BitsStored=12, HighBit=11)
    grey, _ = our_rendering(path)
    assert grey[0, 0] > grey[-1, -1] + 200


@pytest.mark.parametrize("modality", ["CR", "DX", "US", "MR"])
@pytest.mark.parametrize("bright_side", ["left", "right"])
def test_non_mammograms_with_a_laterality_keep_their_stored_orientation(tmp_path, modality, bright_side):
    """A right tibia or a chest X-ray with Image Laterality R is shown as stored, whichever side its
    tissue touches (the mammography rule would turn the one brighter on the left)."""
    g = _gradient() if bright_side == "right" else _gradient()[:, ::-1].copy()
    path = write_dicom(tmp_path / "tibia.dcm", g, Modality=modality, ImageLaterality="R", ViewPosition="CC",
                       PatientOrientation=["L", "F"], BitsStored=12, HighBit=11)
    image = load(path)
    assert reading_flips(image.info, image.frame(0)) == (False, False)
    grey, _ = our_rendering(path)
    assert np.corrcoef(grey.ravel(), g.ravel().astype(float))[0, 1] > 0.99  # as stored, not mirrored


def test_mammograms_are_still_turned_for_hanging(tmp_path):
    g = _gradient()
    right_cc = write_dicom(tmp_path / "rcc.dcm", g, Modality="MG", ImageLaterality="R", ViewPosition="CC",
                           PatientOrientation=["A", "L"], BitsStored=12, HighBit=11)
    image = load(right_cc)
    assert reading_flips(image.info, image.frame(0)) == (True, False)


def test_orientation_markers_stay_true_after_the_hanging_and_the_readers_flips(tmp_path):
    g = _gradient()
    path = write_dicom(tmp_path / "rcc.dcm", g, Modality="MG", ImageLaterality="R", ViewPosition="CC",
                       PatientOrientation=["A", "L"], BitsStored=12, HighBit=11)
    image = load(path)
    state = ViewportState(image, flip_h=True)  # the hanging turns it: rows now run towards P
    assert state.orientation_markers() == {"left": "A", "right": "P", "top": "R", "bottom": "L"}
    state.flip(horizontal=True)
    assert state.orientation_markers() == {"left": "P", "right": "A", "top": "R", "bottom": "L"}
    state.flip(horizontal=False)
    assert state.orientation_markers() == {"left": "P", "right": "A", "top": "L", "bottom": "R"}
    state.reset()
    assert (state.flip_h, state.flip_v) == (True, False)
    plain = write_dicom(tmp_path / "plain.dcm", g, Modality="OT")
    assert ViewportState(load(plain)).orientation_markers() == {}


def test_flipping_a_zoomed_view_keeps_the_same_image_point_centred(tmp_path):
    image = load(write_dicom(tmp_path / "a.dcm", _gradient(), Modality="OT"))
    state = ViewportState(image)
    state.set_viewport_size(48, 64)
    state.zoom_by(4.0, at=(0.25, 0.25))
    cx, cy = state.effective_center
    state.flip(horizontal=True)
    assert state.effective_center == pytest.approx((48 - cx, cy))


@pytest.mark.parametrize(
    "pixels",
    [
        np.where(np.arange(3072).reshape(64, 48) % 997 == 0, 1, 0).astype(np.uint8),  # 4 pixels set
        np.where(_gradient() > 2000, 700, 0).astype(np.uint16),  # background and one tissue value
        np.where(np.arange(3072).reshape(64, 48) < 3068, 100, 200).astype(np.uint16),  # 0.1 % brighter
    ],
    ids=["sparse-mask", "background-and-tissue", "rare-bright-value"],
)
def test_auto_window_never_maps_every_distinct_value_to_one_grey(pixels):
    window = auto_window(pixels, slope=1.0, intercept=0.0)
    state_grey = np.unique(_apply(window, pixels))
    assert len(state_grey) >= 2


def _apply(window: Window, pixels: np.ndarray) -> np.ndarray:
    from app.core.display import transfer_for_window

    return transfer_for_window(window, slope=1.0, intercept=0.0, inverse=False).apply(pixels)


def test_a_one_bit_image_shows_black_and_white(tmp_path):
    path = next(p for p in generated_files(tmp_path) if p.name == "one_bit.dcm")
    grey, _ = our_rendering(path)
    assert set(np.unique(grey)) == {0.0, 255.0}


def test_j2k_stream_signed_under_an_unsigned_header_follows_the_header(tmp_path):
    path = next(p for p in generated_files(tmp_path) if p.name.startswith("j2k_header_unsigned"))
    image = load(path)
    reference = pydicom.dcmread(PYDICOM_FILES / "MR_small_jp2klossless.dcm").pixel_array
    assert np.array_equal(image.frame(0).astype(np.int64), reference.astype(np.int64))  # not shifted by 32768
    assert judge(path).outcome == "shown right"


def test_j2k_negative_values_under_an_unsigned_header_are_refused_with_the_reason(tmp_path):
    path = j2k_with_negative_values_header_unsigned(tmp_path / "neg.dcm")
    with pytest.raises(StudyLoadError, match="Pixel Representation"):
        load(path)


def test_an_unknown_transfer_syntax_is_refused_with_its_uid_name_and_remedy(tmp_path):
    path = deflated_image_frame_file(tmp_path / "deflated.dcm")
    with pytest.raises(StudyLoadError) as error:
        load(path)
    reason = error.value.reason
    assert "1.2.840.10008.1.2.8.1" in reason and "Deflated Image Frame Compression" in reason
    assert "dcmconv" in reason or "gdcmconv" in reason
    result = scan([tmp_path])  # in a folder: one problem, no traceback
    assert [p.path.name for p in result.problems] == ["deflated.dcm"] and not result.studies


def test_dicom_without_preamble_and_file_meta_opens(tmp_path):
    path = next(p for p in generated_files(tmp_path) if p.name == "no_file_meta.dcm")
    assert path.read_bytes()[128:132] != b"DICM"
    image = load(path)
    assert image.info.modality == "MR" and np.array_equal(image.frame(0), _gradient())
    result = scan([path])
    assert len(result.studies) == 1 and not result.problems


def test_a_bare_data_set_without_pixels_says_what_it_is_not_that_it_is_no_dicom():
    result = scan([PYDICOM_FILES / "rtstruct.dcm"])
    assert [p.reason for p in result.problems] == ["no pixel data (RTSTRUCT object)"]


def test_a_decoder_failure_lists_every_plugins_reason():
    with pytest.raises(StudyLoadError) as error:
        load(PYDICOM_FILES / "JPEG-lossy.dcm")
    reason = error.value.reason
    assert "pylibjpeg:" in reason and "pillow:" in reason and not reason.rstrip().endswith(":")
    assert "\n" not in reason and len(reason) < 600


@pytest.mark.parametrize("spacing", [[0, 0], [0.1, 0], [-0.1, 0.1]])
def test_a_pixel_spacing_of_zero_is_no_spacing(tmp_path, spacing):
    """pydicom-data's RG1 chest radiograph writes PixelSpacing 0\\0: no "0 mm/px", no resampling by it."""
    info = read_info(write_dicom(tmp_path / "a.dcm", _gradient(), Modality="CR", PixelSpacing=spacing))
    assert info.pixel_spacing is None
    assert read_info(write_dicom(tmp_path / "b.dcm", _gradient(), PixelSpacing=[0.1, 0.2])).pixel_spacing == (0.1, 0.2)
