"""A rendered view (overlays burned in) as a DICOM Secondary Capture that cannot pass for the original:
new UIDs in a new series, ImageType DERIVED\\SECONDARY, Burned In Annotation YES, a derived label in the
pixels and in the series description, and a reference to the source image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from app import __version__
from app.export.files import save_whole

LABEL = "AI VIEW - DERIVED - NOT THE ORIGINAL"
SERIES_DESCRIPTION = "AI view with overlays (derived, not for diagnosis)"


class SecondaryCaptureError(Exception):
    """Why the capture could not be written, in one line."""


def labelled(rgb: np.ndarray) -> np.ndarray:
    """The view with a black strip across the top that says it is a derived AI view (a copy)."""
    import cv2

    image = np.ascontiguousarray(rgb, dtype=np.uint8).copy()
    height, width = image.shape[:2]
    scale = max(0.3, min(width / 900, 2.0))
    strip = max(12, int(26 * scale))
    image[:strip] = 0
    cv2.putText(image, LABEL, (4, strip - max(3, strip // 4)), cv2.FONT_HERSHEY_SIMPLEX, scale * 0.8,
                (255, 255, 0), max(1, int(scale * 1.5)), cv2.LINE_AA)
    return image


def _orientation(ds: Dataset) -> tuple[str, str] | None:
    """The source's Patient Orientation when it is two valid biped codes (the view shows it unrotated)."""
    values = [str(v).upper() for v in (ds.get("PatientOrientation") or [])]
    valid = len(values) == 2 and all(v and set(v) <= set("AFHLPR") for v in values)
    return (values[0], values[1]) if valid else None


def write_secondary_capture(source: Path, rgb: np.ndarray, out: Path, *, description: str = "",
                            patient_orientation: tuple[str, str] | None = None) -> Path:
    """`rgb` (rows x columns x 3, uint8) is the view as shown; it joins the source image's study.

    `patient_orientation`: the view's row and column directions as shown (a hanging may flip the image);
    without it the source's is used, and without that it is written empty (Type 2: unknown).
    """
    import highdicom as hd

    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or min(rgb.shape[:2]) < 16:
        raise SecondaryCaptureError(f"expected an RGB view (rows x columns x 3, uint8, at least 16 pixels), "
                                    f"got {rgb.shape} {rgb.dtype}")
    try:
        ds = pydicom.dcmread(source, stop_before_pixels=True)
    except (pydicom.errors.InvalidDicomError, OSError) as error:
        raise SecondaryCaptureError(f"a secondary capture joins a DICOM study; {Path(source).name} is not "
                                    f"DICOM ({type(error).__name__})") from None
    orientation = patient_orientation or _orientation(ds)
    try:
        sc = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=ds, pixel_array=labelled(rgb), photometric_interpretation="RGB", bits_allocated=8,
            coordinate_system="PATIENT", series_instance_uid=hd.UID(), series_number=902,
            sop_instance_uid=hd.UID(), instance_number=1, manufacturer="RadLens",
            patient_orientation=orientation or ("A", "R"), series_description=SERIES_DESCRIPTION)
    except (ValueError, TypeError, AttributeError) as error:
        raise SecondaryCaptureError(f"highdicom refused the capture: {error}") from None
    if orientation is None:
        sc.PatientOrientation = ""  # highdicom needs a value to build the image; the truth is "unknown"
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.BurnedInAnnotation = "YES"
    sc.SoftwareVersions = __version__
    sc.DerivationDescription = ("RadLens view of the source image with AI overlays burned in"
                                + (f": {description}" if description else ""))[:1024]
    sc.ImageComments = LABEL
    reference = Dataset()
    reference.ReferencedSOPClassUID, reference.ReferencedSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    sc.SourceImageSequence = [reference]
    return save_whole(sc, out)
