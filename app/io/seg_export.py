"""A segmentation mask of a DICOM image written as DICOM SEG through highdicom."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom

from app import __version__


class SegExportError(Exception):
    """Why a DICOM SEG could not be written, in one line."""


def write_dicom_seg(source: Path, mask: np.ndarray, out: Path, *, algorithm: str, frame: int = 0) -> Path:
    """Write `mask` (rows x columns, bool, on the source's pixel grid) as a binary SEG referencing `source`."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    try:
        ds = pydicom.dcmread(source)
    except (pydicom.errors.InvalidDicomError, OSError) as error:
        raise SegExportError(f"DICOM SEG needs a DICOM source image; {Path(source).name} is not one") from error
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if mask.shape != (ds.Rows, ds.Columns):
        raise SegExportError(f"mask is {mask.shape}, the image is {(ds.Rows, ds.Columns)}")
    pixels = mask.astype(bool)
    if frames > 1 and "FrameOfReferenceUID" not in ds:
        raise SegExportError("this multi-frame image has no Frame of Reference, so highdicom cannot tie a SEG "
                             "to one of its frames; export the view as PNG instead")
    if frames > 1:
        pixels = np.zeros((frames, ds.Rows, ds.Columns), bool)
        pixels[frame] = mask
    name, _, version = algorithm.partition("@")
    segment = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="Lesion",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Lesion,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=name, version=version or "unknown", family=codes.DCM.ArtificialIntelligence),
    )
    try:
        seg = hd.seg.Segmentation(
            source_images=[ds],
            pixel_array=pixels,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[segment],
            series_instance_uid=hd.UID(),
            series_number=900,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="RadLens",
            manufacturer_model_name="RadLens",
            software_versions=__version__,
            device_serial_number="none",
            series_description=f"AI segmentation ({name})",
        )
    except (ValueError, TypeError, AttributeError) as error:
        raise SegExportError(f"highdicom refused the segmentation: {error}") from error
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(out)
    return out
