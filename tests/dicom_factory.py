"""Writes small but real DICOM files for tests, with exactly the attributes a test needs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid


def write_dicom(path: Path, pixels: np.ndarray, **attributes) -> Path:
    """Grey pixels (H, W) or frames (F, H, W); `attributes` are DICOM keywords set last."""
    ds = dicom_dataset(pixels, **attributes)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def dicom_dataset(pixels: np.ndarray, **attributes) -> FileDataset:
    """The data set `write_dicom` writes (explicit VR little endian), for tests that change it first."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "OT"
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "TEST^PATIENT", "T1", "19700101", "F"
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20260101", "120000", "1", "A1"
    ds.ReferringPhysicianName, ds.SeriesNumber, ds.InstanceNumber = "", 1, 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    if pixels.ndim == 3:
        ds.NumberOfFrames = pixels.shape[0]
    ds.Rows, ds.Columns = pixels.shape[-2:]
    bits = 16 if pixels.dtype.itemsize == 2 else 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    return ds


def four_view_phantom(folder: Path, size: tuple[int, int] = (240, 180)) -> dict[str, Path]:
    """Four MG views stored chest wall at column 0 (Patient Orientation 'A'), each a distinct grey.

    Tissue fills the half of each image next to the chest wall; the far half is black.
    Returns paths by "R CC", "L CC", "R MLO", "L MLO".
    """
    rows, cols = size
    study = generate_uid()
    grey = {"R CC": 1000, "L CC": 2000, "R MLO": 3000, "L MLO": 4000}
    paths = {}
    for number, (label, value) in enumerate(grey.items(), start=1):
        laterality, view = label.split()
        pixels = np.zeros((rows, cols), np.uint16)
        pixels[:, : cols // 2] = value
        column_direction = {"CC": {"R": "L", "L": "R"}, "MLO": {"R": "F", "L": "F"}}[view][laterality]
        paths[label] = write_dicom(
            folder / f"view{number}.dcm", pixels, Modality="MG", StudyInstanceUID=study,
            ImageLaterality=laterality, ViewPosition=view, PatientOrientation=["A", column_direction],
            WindowCenter=2048, WindowWidth=4096, InstanceNumber=number, BitsStored=12, HighBit=11,
        )
    return paths


def mg_study(folder: Path, *, size: tuple[int, int] = (64, 48), views: tuple[str, ...] = ("R CC", "L CC", "R MLO",
             "L MLO"), **attributes) -> list[Path]:
    """A mammography study stored as Digital Mammography X-Ray (For Presentation), 16-bit, one file per view.

    `attributes` (e.g. PatientName, PatientID, AccessionNumber, StudyDate) apply to every file.
    """
    from pydicom.uid import DigitalMammographyXRayImageStorageForPresentation as MG

    study = attributes.pop("StudyInstanceUID", generate_uid())
    series = generate_uid()
    rng = np.random.default_rng(len(views) * size[0])
    paths = []
    for number, label in enumerate(views, start=1):
        laterality, view = label.split()
        pixels = rng.integers(0, 4096, size, dtype=np.uint16)
        ds = dicom_dataset(pixels, Modality="MG", StudyInstanceUID=study, SeriesInstanceUID=series,
                           ImageLaterality=laterality, ViewPosition=view, InstanceNumber=number, BitsStored=12,
                           HighBit=11, WindowCenter=2048, WindowWidth=4096, **attributes)
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = MG
        path = folder / f"{number:02d}_{laterality}{view}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
