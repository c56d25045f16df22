"""PNG and JPEG loading: bit depths, colour, grey stored as RGB, truncation."""

import cv2
import numpy as np
import pytest

from app.io.errors import StudyLoadError
from app.io.study_loader import decode_image, read_info


def write(path, pixels):
    assert cv2.imwrite(str(path), pixels)
    return path


def test_16_bit_grey_png_keeps_its_values(tmp_path):
    pixels = np.arange(0, 4096 * 16, 16, dtype=np.uint16).reshape(64, 64)
    image = decode_image(read_info(write(tmp_path / "g16.png", pixels)))
    assert image.frames.dtype == np.uint16 and np.array_equal(image.frames[0], pixels)
    assert image.stored_range == (0.0, float(pixels.max()))


def test_8_bit_grey_png(tmp_path):
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    image = decode_image(read_info(write(tmp_path / "g8.png", pixels)))
    assert np.array_equal(image.frames[0], pixels) and not image.is_rgb


def test_rgb_png_is_rgb_in_the_right_channel_order(tmp_path):
    bgr = np.zeros((8, 8, 3), np.uint8)
    bgr[..., 2] = 200  # red in OpenCV's BGR order
    image = decode_image(read_info(write(tmp_path / "red.png", bgr)))
    assert image.is_rgb and image.frames[0, 0, 0].tolist() == [200, 0, 0]


def test_grey_saved_as_rgb_becomes_grey(tmp_path):
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    image = decode_image(read_info(write(tmp_path / "grey_rgb.jpg", np.dstack([grey] * 3))))
    assert not image.is_rgb and image.frames.shape == (1, 8, 8)


def test_png_whose_extension_lies_is_still_read(tmp_path):
    path = write(tmp_path / "scan.png", np.zeros((4, 4), np.uint8)).rename(tmp_path / "scan.bin")
    assert read_info(path).source_format == "png"


@pytest.mark.parametrize("name", ["cut.png", "cut.jpg"])
def test_truncated_file_is_refused_with_a_reason(tmp_path, name):
    noise = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
    full = write(tmp_path / f"full_{name}", noise).read_bytes()
    path = tmp_path / name
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(StudyLoadError, match="truncated"):
        decode_image(read_info(path))


def test_laterality_and_view_from_file_name(tmp_path):
    info = read_info(write(tmp_path / "0_L-MLO.png", np.zeros((4, 4), np.uint16)))
    assert (info.laterality, info.view, info.modality) == ("L", "MLO", "MG")
