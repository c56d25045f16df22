"""Display maths, pure functions on numpy arrays: modality rescale, VOI window or LUT, inversion.

The viewer never converts a stored image to floats. A window in modality units becomes a pair of
levels in stored units plus a 256-entry grey table (`DisplayTransfer`); the drawing library maps
stored values through them. `DisplayTransfer.apply` is the same mapping in numpy, used for exports
and to test what the screen shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GREY_RAMP = np.arange(256, dtype=np.uint8)
MAX_LUT_ENTRIES = 65536


@dataclass(frozen=True)
class Window:
    """A linear VOI window in modality units (DICOM PS3.3 C.11.2.1.2: centre and width)."""

    center: float
    width: float

    def __post_init__(self) -> None:
        if not np.isfinite(self.center) or not np.isfinite(self.width):
            raise ValueError(f"window must be finite, got {self.center}/{self.width}")
        if self.width < 1:
            object.__setattr__(self, "width", 1.0)

    @property
    def bounds(self) -> tuple[float, float]:
        """Modality values that map to black and to white."""
        half = (self.width - 1) / 2
        return self.center - 0.5 - half, self.center - 0.5 + half

    @classmethod
    def from_bounds(cls, low: float, high: float) -> Window:
        width = max(high - low, 0) + 1
        return cls(center=low + 0.5 + (width - 1) / 2, width=width)

    def adjusted(self, d_center: float, d_width: float) -> Window:
        return Window(self.center + d_center, max(1.0, self.width + d_width))


@dataclass(frozen=True, eq=False)
class VoiLut:
    """A VOI LUT from the file: modality value `first_mapped + i` maps to `table[i]` (0..2**bits-1)."""

    first_mapped: int
    table: np.ndarray
    bits: int
    explanation: str = ""

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Look modality values up in the table, clamping outside it like PS3.3 C.11.2.1.1."""
        index = np.clip(np.rint(values).astype(np.int64) - self.first_mapped, 0, len(self.table) - 1)
        return self.table[index]


def stored_to_modality(stored: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """Modality LUT as rescale slope and intercept (PS3.3 C.11.1)."""
    if slope == 1.0 and intercept == 0.0:
        return stored.astype(np.float64)
    return stored.astype(np.float64) * slope + intercept


def modality_to_stored(value: float, slope: float, intercept: float) -> float:
    return (value - intercept) / slope if slope else value


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """DICOM linear VOI function on modality values, to [0, 1]."""
    low, high = window.bounds
    out = (np.asarray(values, dtype=np.float64) - (window.center - 0.5)) / max(window.width - 1, 1e-9) + 0.5
    out = np.where(values <= low, 0.0, np.where(values > high, 1.0, out))
    return np.clip(out, 0.0, 1.0)


@dataclass(frozen=True, eq=False)
class DisplayTransfer:
    """Stored value -> 8-bit grey: `lut[clip(floor((x - lo) * len(lut) / (hi - lo)), 0, len(lut) - 1)]`.

    For RGB images `lut` is None and each channel maps as `clip((x - lo) * 255 / (hi - lo), 0, 255)`;
    levels given high-to-low invert. These are the rules of pyqtgraph's ImageItem, which draws it.
    """

    levels: tuple[float, float]
    lut: np.ndarray | None

    def apply(self, stored: np.ndarray) -> np.ndarray:
        lo, hi = self.levels
        span = (hi - lo) or 1.0
        data = stored.astype(np.float64)
        if self.lut is None:
            return np.clip((data - lo) * (255.0 / span), 0, 255).astype(np.uint8)
        n = len(self.lut)
        index = np.clip((data - lo) * (n / span), 0, n - 1).astype(np.int64)
        return self.lut[index]


SIGNED16_OFFSET = 32768


def drawable(pixels: np.ndarray, transfer: DisplayTransfer) -> tuple[np.ndarray, DisplayTransfer]:
    """Pixels and transfer as the drawing library draws them fastest. Signed 16-bit frames (CT, MR)
    become unsigned (value + 32768, one bit flip of the same bytes) with levels shifted alike, since
    pyqtgraph folds levels into its lookup table only for unsigned 8- and 16-bit data; the grey each
    value gets is the same (see tests/test_display.py)."""
    if pixels.dtype != np.int16:
        return pixels, transfer
    return pixels.view(np.uint16) ^ np.uint16(0x8000), drawable_transfer(pixels.dtype, transfer)


def drawable_transfer(dtype: np.dtype, transfer: DisplayTransfer) -> DisplayTransfer:
    """The transfer for pixels of `dtype` as `drawable` hands them over (levels shifted for int16)."""
    if dtype != np.int16:
        return transfer
    lo, hi = transfer.levels
    return DisplayTransfer(levels=(lo + SIGNED16_OFFSET, hi + SIGNED16_OFFSET), lut=transfer.lut)


def transfer_for_window(
    window: Window, *, slope: float, intercept: float, inverse: bool
) -> DisplayTransfer:
    """A linear window in modality units as stored-value levels and a grey ramp (reversed if inverse)."""
    low, high = window.bounds
    lo = modality_to_stored(low, slope, intercept)
    hi = modality_to_stored(high, slope, intercept)
    if hi == lo:
        hi = lo + 1
    ramp = GREY_RAMP[::-1].copy() if inverse else GREY_RAMP
    return DisplayTransfer(levels=(lo, hi), lut=ramp)


def transfer_for_voi_lut(
    voi: VoiLut, *, stored_range: tuple[float, float], slope: float, intercept: float, inverse: bool
) -> DisplayTransfer:
    """A VOI LUT sequence as one table over every stored value of the image."""
    lo, hi = int(np.floor(stored_range[0])), int(np.ceil(stored_range[1]))
    count = hi - lo + 1
    stored = (
        np.arange(lo, hi + 1, dtype=np.float64)
        if count <= MAX_LUT_ENTRIES
        else np.linspace(lo, hi + 1, MAX_LUT_ENTRIES, endpoint=False)
    )
    out = voi.apply(stored_to_modality(stored, slope, intercept)).astype(np.float64)
    grey = np.round(out * (255.0 / max((1 << voi.bits) - 1, 1))).clip(0, 255).astype(np.uint8)
    if inverse:
        grey = 255 - grey
    return DisplayTransfer(levels=(float(lo), float(hi + 1)), lut=grey)


def transfer_for_rgb(window: Window, *, inverse: bool) -> DisplayTransfer:
    low, high = window.bounds
    return DisplayTransfer(levels=(high, low) if inverse else (low, high), lut=None)


def sample_for_statistics(frame: np.ndarray, target: int = 262_144) -> np.ndarray:
    """A strided view with about `target` pixels: enough for percentiles, no copy of the image."""
    step = max(1, int(np.sqrt(frame.shape[0] * frame.shape[1] / target)))
    return frame[::step, ::step]


def auto_window(
    frame: np.ndarray, *, slope: float, intercept: float, background_is_max: bool = False
) -> Window:
    """Window from the 0.5th-99.5th percentile of the pixels that are not flat background."""
    sample = sample_for_statistics(frame).ravel()
    background = sample.max() if background_is_max else sample.min()
    tissue = sample[sample != background]
    if tissue.size < 16:
        tissue = sample
    low, high = np.percentile(tissue, [0.5, 99.5])
    if high <= low:  # a mask, a 1-bit or two-valued image: span every value, never one flat grey
        low, high = frame.min(), frame.max()
    low_m = float(low) * slope + intercept
    high_m = float(high) * slope + intercept
    low_m, high_m = min(low_m, high_m), max(low_m, high_m)
    return Window.from_bounds(low_m, max(high_m, low_m + 1))


def full_range_window(stored_range: tuple[float, float], *, slope: float, intercept: float) -> Window:
    a = stored_range[0] * slope + intercept
    b = stored_range[1] * slope + intercept
    return Window.from_bounds(min(a, b), max(a, b, min(a, b) + 1))


AREA_RESIZE_DTYPES = (np.uint8, np.uint16, np.int16, np.float32, np.float64)


def downsample_for_display(pixels: np.ndarray, factors: tuple[int, int]) -> np.ndarray | None:
    """Stored values shrunk by whole (x, y) factors with area averaging, as a screen shows them.

    OpenCV's area resize does in a few milliseconds what a numpy mean over blocks does in ~50 ms for a
    3328 x 2560 mammogram. None when the data is of a kind it does not take (the caller falls back).
    """
    import cv2

    x_factor, y_factor = factors
    height, width = pixels.shape[0] // y_factor, pixels.shape[1] // x_factor
    if pixels.ndim != 2 or pixels.dtype.type not in AREA_RESIZE_DTYPES or not height or not width:
        return None
    return cv2.resize(pixels[: height * y_factor, : width * x_factor], (width, height), interpolation=cv2.INTER_AREA)
