"""Display maths against DICOM's definitions and pydicom's reference implementations."""

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from app.core.display import (
    DisplayTransfer,
    VoiLut,
    Window,
    apply_window,
    auto_window,
    stored_to_modality,
    transfer_for_voi_lut,
    transfer_for_window,
)


def test_window_bounds_follow_dicom_linear_function():
    # PS3.3 C.11.2.1.2: black at or below c - 0.5 - (w - 1) / 2, white above c - 0.5 + (w - 1) / 2
    assert Window(2048, 4096).bounds == (0.0, 4095.0)
    assert Window(40, 400).bounds == (-160.0, 239.0)
    assert Window.from_bounds(*Window(40, 400).bounds) == Window(40, 400)


def test_apply_window_matches_pydicom_linear_voi():
    ds = Dataset()
    ds.BitsStored, ds.PixelRepresentation, ds.PhotometricInterpretation = 12, 0, "MONOCHROME2"
    ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = 1000, 600, "LINEAR"
    values = np.arange(0, 4096, 7, dtype=np.uint16)
    expected = apply_voi_lut(values.copy(), ds) / 4095.0
    ours = apply_window(values.astype(float), Window(1000, 600))
    assert np.allclose(ours, expected, atol=1e-6)


def test_modality_rescale_matches_pydicom():
    ds = Dataset()
    ds.RescaleSlope, ds.RescaleIntercept, ds.PixelRepresentation, ds.BitsStored = 2.5, -1024, 0, 16
    stored = np.array([0, 1, 100, 4095], dtype=np.uint16)
    assert np.allclose(stored_to_modality(stored, 2.5, -1024), apply_modality_lut(stored, ds))


def test_window_transfer_maps_stored_values_through_rescale():
    # CT-like: stored = (HU + 1024); a soft-tissue window 40/400 shows -160 HU black, 240 HU white
    transfer = transfer_for_window(Window(40, 400), slope=1.0, intercept=-1024.0, inverse=False)
    stored = np.array([0, 1024 - 161, 1024 + 40, 1024 + 241, 4000], dtype=np.uint16)
    grey = transfer.apply(stored)
    assert grey[0] == 0 and grey[1] == 0
    assert grey[3] == 255 and grey[4] == 255
    assert 120 <= grey[2] <= 135


def test_inverse_transfer_is_the_mirror_image():
    stored = np.arange(0, 4096, 13, dtype=np.uint16)
    window = Window(2000, 3000)
    normal = transfer_for_window(window, slope=1, intercept=0, inverse=False).apply(stored)
    inverse = transfer_for_window(window, slope=1, intercept=0, inverse=True).apply(stored)
    assert np.array_equal(inverse.astype(int), 255 - normal.astype(int))


def test_voi_lut_transfer_matches_pydicom_voi_lut_sequence():
    ds = Dataset()
    ds.BitsStored, ds.PixelRepresentation, ds.PhotometricInterpretation = 12, 0, "MONOCHROME2"
    item = Dataset()
    table = (np.sqrt(np.linspace(0, 1, 2048)) * 4095).astype(np.uint16)
    item.LUTDescriptor = [2048, 1000, 12]
    item.LUTData = table.tolist()
    ds.VOILUTSequence = [item]
    stored = np.arange(0, 4096, 3, dtype=np.uint16)
    expected = apply_voi_lut(stored.copy(), ds).astype(float)
    voi = VoiLut(first_mapped=1000, table=table.astype(np.int64), bits=12)
    assert np.array_equal(voi.apply(stored.astype(float)), expected)
    transfer = transfer_for_voi_lut(voi, stored_range=(0, 4095), slope=1, intercept=0, inverse=False)
    assert np.array_equal(transfer.apply(stored), np.round(expected * 255 / 4095).astype(np.uint8))


def test_display_transfer_follows_pyqtgraph_lut_indexing():
    transfer = DisplayTransfer(levels=(0.0, 256.0), lut=np.arange(256, dtype=np.uint8))
    assert np.array_equal(transfer.apply(np.arange(256)), np.arange(256))


def test_window_width_below_one_is_clamped_and_nonfinite_refused():
    assert Window(10, 0).width == 1
    with pytest.raises(ValueError):
        Window(float("nan"), 10)


def test_auto_window_ignores_black_background():
    image = np.zeros((400, 400), np.uint16)
    image[:, :200] = np.linspace(1000, 3000, 200, dtype=np.uint16)[None, :]
    low, high = auto_window(image, slope=1, intercept=0).bounds
    assert 990 <= low <= 1020 and 2980 <= high <= 3010


def test_downsampling_for_display_is_the_block_mean():
    from app.core.display import downsample_for_display

    pixels = np.random.default_rng(0).integers(0, 4096, (301, 203), dtype=np.uint16)
    small = downsample_for_display(pixels, (4, 3))  # (x, y) factors
    blocks = pixels[:300, :200].reshape(100, 3, 50, 4).mean(axis=(1, 3))
    assert small.shape == (100, 50) and small.dtype == np.uint16
    assert np.abs(small.astype(float) - blocks).max() <= 1.0
    assert downsample_for_display(np.zeros((4, 4, 3), np.uint8), (2, 2)) is None  # RGB: pyqtgraph's own path


def test_heatmap_colours_follow_the_colour_map_and_fade_at_the_low_end():
    from app.core.colormaps import colormap_table
    from app.core.layers import HEATMAP, OverlayLayer, heatmap_rgba

    values = np.array([[0.0, 0.1, 0.5, 1.0]], np.float32)
    rgba = heatmap_rgba(values, (0.0, 1.0), "viridis")
    table = colormap_table("viridis")
    assert np.array_equal(rgba[0, :, :3], table[[0, 26, 128, 255]])
    assert list(rgba[0, :, 3]) == [0, 104, 255, 255]  # level 26 of 255, alpha ramps to full by 0.25
    layer = OverlayLayer("cam", HEATMAP, "img", data=np.random.default_rng(0).random((3000, 1500), np.float32))
    small, (sx, sy) = layer.display_rgba(600)
    assert small.shape == (600, 300, 4) and (sx, sy) == (5.0, 5.0)


def test_signed_16_bit_frames_draw_unsigned_with_shifted_levels_and_the_same_greys():
    from app.core.display import DisplayTransfer, drawable

    rng = np.random.default_rng(3)
    pixels = rng.integers(-2000, 3000, (64, 48)).astype(np.int16)
    pixels[0, :4] = (-32768, -1, 0, 32767)
    transfer = DisplayTransfer(levels=(-500.0, 1500.0), lut=np.arange(256, dtype=np.uint8))
    shown, shifted = drawable(pixels, transfer)
    assert shown.dtype == np.uint16 and shifted.levels == (32268.0, 34268.0)
    assert list(shown[0, :4]) == [0, 32767, 32768, 65535]
    assert np.array_equal(shifted.apply(shown), transfer.apply(pixels))
    unsigned = pixels.astype(np.uint16)
    assert drawable(unsigned, transfer)[0] is unsigned and drawable(unsigned, transfer)[1] is transfer
