"""What the viewer knows about one image: its header facts (`ImageInfo`) and its decoded pixels (`LoadedImage`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from app.core.display import VoiLut, Window
from app.core.text import printable, unicode_key

MAMMO_VIEWS = ("CC", "MLO")


@dataclass(frozen=True)
class WindowPreset:
    """A named window; `voi_lut` set means a non-linear VOI LUT from the file instead of a linear window."""

    name: str
    window: Window | None = None
    voi_lut: VoiLut | None = None


@dataclass(frozen=True)
class ImageInfo:
    """Header facts of one image file; read without decoding pixels.

    `identity` is stable for the same file and is what inference results and viewports are keyed by.
    """

    path: Path
    source_format: str  # "dicom" | "png" | "jpeg"
    modality: str = ""  # DICOM Modality (MG, US, MR, CR, DX, ...); "" when the file does not say
    laterality: str | None = None  # "R" | "L"
    view: str | None = None  # "CC" | "MLO" | other ViewPosition
    study_uid: str | None = None
    series_uid: str | None = None
    sop_uid: str | None = None
    study_description: str = ""
    series_description: str = ""
    patient_name: str = ""
    patient_id: str = ""
    study_date: str = ""
    instance_number: int | None = None
    rows: int = 0
    columns: int = 0
    frames: int = 1
    samples_per_pixel: int = 1
    photometric: str = "MONOCHROME2"
    bits_stored: int = 8
    transfer_syntax: str = ""
    pixel_spacing: tuple[float, float] | None = None  # (row, column) in mm
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    window_presets: tuple[WindowPreset, ...] = ()
    presentation_inverse: bool = False  # MONOCHROME1 or Presentation LUT Shape INVERSE
    patient_orientation: tuple[str, str] | None = None  # (row direction, column direction)

    @cached_property
    def identity(self) -> str:
        """The resolved file and its SOP Instance UID: two files that share one UID are two images."""
        where = unicode_key(str(self.path.resolve()))
        return f"{self.sop_uid}@{where}" if self.sop_uid else where

    @property
    def is_mammogram_view(self) -> bool:
        return self.laterality in ("R", "L") and self.view in MAMMO_VIEWS

    @property
    def is_mammogram(self) -> bool:
        """A mammography image: DICOM Modality MG, or a file without a modality named as a view.

        Only these are hung and turned by laterality; a chest X-ray or a tibia with an Image
        Laterality is shown as stored.
        """
        return self.modality == "MG" or (not self.modality and self.is_mammogram_view)

    @property
    def label(self) -> str:
        """Short text for corner annotation and lists, e.g. "R CC" or the file name."""
        if self.laterality or self.view:
            return " ".join(part for part in (self.laterality, self.view) if part)
        return printable(self.path.name)


@dataclass
class LoadedImage:
    """Decoded pixels ready for display: `frames` is (F, H, W) stored values or (F, H, W, 3) RGB uint8.

    Stored values are kept as decoded (no float copy); the modality and VOI maths turn windows into
    display levels instead (see `app.core.display`).
    """

    info: ImageInfo
    frames: np.ndarray
    stored_range: tuple[float, float] = field(default=(0.0, 0.0))

    @property
    def frame_count(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def is_rgb(self) -> bool:
        return self.frames.ndim == 4

    @property
    def nbytes(self) -> int:
        return int(self.frames.nbytes)

    def frame(self, index: int) -> np.ndarray:
        return self.frames[min(max(index, 0), self.frame_count - 1)]
