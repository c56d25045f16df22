"""DICOM loading: every transfer syntax and photometric case against pydicom's own result."""

from dataclasses import replace

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, convert_color_space

from app.core.viewport_state import ViewportState
from app.io.dicom_reader import decode_dicom, read_dicom_info
from app.io.errors import StudyLoadError
from app.io.study_loader import read_info
from tests.conftest import pydicom_file
from tests.dicom_factory import write_dicom


def load(path):
    return decode_dicom(read_dicom_info(path))


REFERENCE_MR = "MR_small.dcm"


@pytest.mark.parametrize("name", [
    "MR_small_RLE.dcm",              # RLE lossless
    "MR_small_jp2klossless.dcm",     # JPEG 2000 lossless
    "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS lossless
    "MR_small_bigendian.dcm",        # explicit VR big endian
    "MR_small_implicit.dcm",         # implicit VR little endian
])
def test_compressed_and_big_endian_mr_decode_to_the_same_pixels(name):
    reference = pydicom.dcmread(pydicom_file(REFERENCE_MR)).pixel_array
    image = load(pydicom_file(name))
    assert image.frames.shape == (1, *reference.shape)
    assert np.array_equal(image.frames[0], reference)


@pytest.mark.parametrize("name", ["SC_rgb_jpeg_gdcm.dcm", "JPGExtended.dcm", "JPEG2000.dcm",
                                  "JPEGLSNearLossless_16.dcm", "image_dfl.dcm", "SC_rgb_rle.dcm"])
def test_jpeg_lossless_extended_j2k_jpegls_deflate_rle_match_pydicom(name):
    path = pydicom_file(name)
    expected = pydicom.dcmread(path).pixel_array
    image = load(path)
    assert np.array_equal(image.frames.reshape(expected.shape), expected)


def test_multiframe_ybr_jpeg_cine_becomes_rgb_frames():
    path = pydicom_file("examples_ybr_color.dcm")
    image = load(path)
    assert image.frames.shape == (30, 240, 320, 3) and image.frames.dtype == np.uint8
    assert image.info.modality == "US" and image.frame_count == 30
    assert np.array_equal(image.frames, pydicom.dcmread(path).pixel_array)  # pydicom converts YBR to RGB


def test_uncompressed_ybr_full_422_is_converted_to_rgb():
    path = pydicom_file("SC_ybr_full_422_uncompressed.dcm")
    ds = pydicom.dcmread(path)
    raw = ds.pixel_array
    image = load(path)
    assert image.is_rgb
    rgb = convert_color_space(pydicom.pixels.pixel_array(path, raw=True), "YBR_FULL", "RGB")
    assert np.abs(image.frames[0].astype(int) - rgb.astype(int)).max() <= 1
    assert np.array_equal(image.frames[0], raw)


def test_palette_colour_becomes_rgb_through_the_palette():
    path = pydicom_file("examples_palette.dcm")
    ds = pydicom.dcmread(path)
    expected = apply_color_lut(ds.pixel_array, ds)
    expected8 = np.rint(expected * (255.0 / 65535)).astype(np.uint8) if expected.dtype != np.uint8 else expected
    image = load(path)
    assert image.is_rgb and image.frames.shape[1:] == (*ds.pixel_array.shape, 3)
    assert np.abs(image.frames[0].astype(int) - expected8.astype(int)).max() <= 1


def test_rescale_window_presets_and_spacing_are_read():
    info = read_dicom_info(pydicom_file("CT_small.dcm"))
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    assert info.rescale_slope == float(ds.RescaleSlope)
    assert info.rescale_intercept == float(ds.RescaleIntercept)
    assert info.pixel_spacing == tuple(float(v) for v in ds.PixelSpacing)


def test_several_window_presets_with_explanations(tmp_path):
    path = write_dicom(tmp_path / "w.dcm", np.zeros((8, 8), np.uint16), WindowCenter=[100, 300],
                       WindowWidth=[50, 400], WindowCenterWidthExplanation=["SOFT", "WIDE"])
    presets = read_dicom_info(path).window_presets
    assert [(p.name, p.window.center, p.window.width) for p in presets] == [("SOFT", 100, 50), ("WIDE", 300, 400)]


def test_monochrome1_is_shown_inverted(tmp_path):
    pixels = np.array([[0, 4095]], np.uint16).repeat(4, axis=0)
    mono1 = load(write_dicom(tmp_path / "m1.dcm", pixels, PhotometricInterpretation="MONOCHROME1",
                             WindowCenter=2048, WindowWidth=4096))
    assert mono1.info.presentation_inverse
    grey = ViewportState(mono1).transfer().apply(mono1.frame(0))
    assert grey[0, 0] == 255 and grey[0, 1] == 0  # stored 0 is white in MONOCHROME1


def test_voi_lut_sequence_becomes_the_default_preset(tmp_path):
    item = Dataset()
    item.LUTDescriptor, item.LUTExplanation = [256, 0, 8], "REVERSED"
    item.add_new("LUTData", "OW", np.arange(255, -1, -1, dtype="<u2").tobytes())
    pixels = np.array([[0, 128, 255]], np.uint16)
    path = write_dicom(tmp_path / "voi.dcm", pixels, VOILUTSequence=[item], WindowCenter=128, WindowWidth=256)
    image = load(path)
    assert image.info.window_presets[0].name == "REVERSED"
    state = ViewportState(image)
    assert state.voi_lut is not None
    assert list(state.transfer().apply(pixels[0])) == [255, 127, 0]
    state.select_preset(image.info.window_presets[1].name)
    assert list(state.transfer().apply(pixels[0]))[0] == 0


@pytest.mark.parametrize("attrs, laterality", [
    ({"ImageLaterality": "L"}, "L"),
    ({"Laterality": "R"}, "R"),
    ({}, "L"),  # from the file name below
])
def test_laterality_from_tags_or_name(tmp_path, attrs, laterality):
    path = write_dicom(tmp_path / "case_L_CC.dcm", np.zeros((4, 4), np.uint16), **attrs)
    info = read_dicom_info(path)
    assert info.laterality == laterality and info.view == "CC"


def test_view_from_view_code_sequence(tmp_path):
    code = Dataset()
    code.CodeMeaning = "medio-lateral oblique"
    info = read_dicom_info(write_dicom(tmp_path / "x.dcm", np.zeros((4, 4), np.uint16), ViewCodeSequence=[code]))
    assert info.view == "MLO"


def test_uids_modality_and_identity_are_read():
    info = read_dicom_info(pydicom_file("MR_small.dcm"))
    ds = pydicom.dcmread(pydicom_file("MR_small.dcm"))
    assert (info.modality, info.study_uid, info.series_uid) == ("MR", ds.StudyInstanceUID, ds.SeriesInstanceUID)
    assert info.identity.startswith(ds.SOPInstanceUID + "@")


def test_truncated_file_has_a_clear_reason():
    with pytest.raises(StudyLoadError, match="truncated file"):
        load(pydicom_file("MR_truncated.dcm"))


def test_object_without_pixels_is_listed_as_such():
    with pytest.raises(StudyLoadError, match="no pixel data"):
        read_info(pydicom_file("rtplan.dcm"))


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_text("not a DICOM file")
    with pytest.raises(StudyLoadError, match="not an image"):
        read_info(path)


def test_missing_codec_names_the_package_to_install(monkeypatch):
    import app.io.dicom_reader as reader

    class Unavailable:
        is_available = False

    info = read_dicom_info(pydicom_file("MR_small_jp2klossless.dcm"))
    monkeypatch.setattr(reader, "get_decoder", lambda uid: Unavailable())
    # Refused at the scan already (listed in Problems), and again if decoding is asked for.
    with pytest.raises(StudyLoadError, match="no decoder for JPEG 2000.*install pylibjpeg-openjpeg"):
        read_dicom_info(pydicom_file("MR_small_jp2klossless.dcm"))
    with pytest.raises(StudyLoadError, match="no decoder for JPEG 2000.*install pylibjpeg-openjpeg"):
        decode_dicom(info)
    info = replace(info, transfer_syntax=pydicom.uid.JPEGLSLossless)
    with pytest.raises(StudyLoadError, match="install pyjpegls"):
        decode_dicom(info)
