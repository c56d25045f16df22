"""The built-in demo: a synthetic four-view mammography phantom written as real DICOM, plus the
real ultrasound and MR files that pydicom ships. Made on first use in the user cache folder.

The phantom stores every breast with its chest wall at column 0, as many detectors do, and says
so in Patient Orientation; hanging must turn the right breast round. A burned-in marker names each
view, drawn so it reads correctly once the image is hung.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

DEMO_VERSION = 2
PHANTOM_SHAPE = (1536, 1152)  # rows, columns; 0.1 mm pixels
DIGITAL_MAMMO_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography X-Ray Image - For Presentation
PYDICOM_DEMO_FILES = ("examples_ybr_color.dcm", "examples_palette.dcm", "examples_overlay.dcm")
UID_ROOT = "1.2.826.0.1.3680043.10.1447."  # prefix for this project's generated UIDs


def demo_paths(cache_dir: Path) -> list[Path]:
    """Paths of the demo files, writing the phantom first if it is missing."""
    folder = cache_dir / f"demo-v{DEMO_VERSION}"
    phantom = write_four_view_phantom(folder / "mammography")
    return phantom + pydicom_sample_files()


def pydicom_sample_files() -> list[Path]:
    """Real US (cine, palette) and MR files bundled inside the pydicom package (never downloaded)."""
    folder = Path(pydicom.__file__).parent / "data" / "test_files"
    return [folder / name for name in PYDICOM_DEMO_FILES if (folder / name).is_file()]


def write_four_view_phantom(folder: Path, shape: tuple[int, int] = PHANTOM_SHAPE, seed: int = 7) -> list[Path]:
    names = ["R_CC", "L_CC", "R_MLO", "L_MLO"]
    paths = [folder / f"{name}.dcm" for name in names]
    if all(p.is_file() for p in paths):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    study_uid, series_uid = generate_uid(UID_ROOT, [f"study{seed}"]), generate_uid(UID_ROOT, [f"series{seed}"])
    for number, (name, path) in enumerate(zip(names, paths), start=1):
        laterality, view = name.split("_")
        pixels = phantom_view(laterality, view, shape, rng)
        ds = _mammogram_dataset(pixels, laterality, view, study_uid, series_uid, number)
        tmp = path.with_suffix(".tmp")
        ds.save_as(tmp, enforce_file_format=True)
        tmp.replace(path)
    return paths


def phantom_view(laterality: str, view: str, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """12-bit phantom in storage orientation (chest wall at column 0, lateral side up for CC)."""
    rows, cols = shape
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    cy, depth, half_height = rows * 0.5, cols * 0.78, rows * 0.42
    if view == "MLO":
        cy, half_height = rows * 0.55, rows * 0.45
    inside = ((x / depth) ** 2 + ((y - cy) / half_height) ** 2) <= 1.0
    thickness = np.sqrt(np.clip(1.0 - (x / depth) ** 2 - ((y - cy) / half_height) ** 2, 0, 1))
    texture = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), 9) * 6.0
    image = np.where(inside, 900 + 1700 * thickness + 180 * texture, 0)
    if view == "MLO":  # pectoral muscle: a bright triangle against the chest wall, at the top
        muscle = (x < cols * 0.32 * (1 - y / (rows * 0.62))) & inside
        image = np.where(muscle, image + 700, image)
    if laterality == "R":  # a spiculated-looking mass and a few calcifications
        cx_m, cy_m = cols * 0.42, rows * (0.40 if view == "CC" else 0.48)
        mass = np.exp(-(((x - cx_m) ** 2 + (y - cy_m) ** 2) / (2 * 38.0**2)))
        image = image + 900 * mass * inside
        for dx, dy in rng.normal(0, 25, size=(7, 2)):
            cv2.circle(image, (int(cx_m + 90 + dx), int(cy_m - 60 + dy)), 3, 3900.0, -1)
    image = np.clip(image, 0, 4095).astype(np.uint16)
    _burn_marker(image, f"{laterality} {view}", flip=(laterality == "R"))
    return image


def _burn_marker(image: np.ndarray, text: str, flip: bool) -> None:
    """A lead-marker label near the far (nipple) side, readable once hung."""
    rows, cols = image.shape
    glyphs = np.zeros((90, 300), np.uint8)
    cv2.putText(glyphs, text, (10, 70), cv2.FONT_HERSHEY_SIMPLEX, 2.4, 255, 7, cv2.LINE_AA)
    label = (glyphs.astype(np.uint32) * 4095 // 255).astype(np.uint16)
    if flip:
        label = label[:, ::-1]
    top, left = 40, cols - 340
    region = image[top:top + 90, left:left + 300]
    np.maximum(region, label, out=region)


def _mammogram_dataset(pixels: np.ndarray, laterality: str, view: str, study_uid: str,
                       series_uid: str, number: int) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DIGITAL_MAMMO_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = generate_uid(UID_ROOT, [study_uid, str(number)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.PatientName, ds.PatientID = "PHANTOM^FOUR VIEW", "RADLENS-DEMO"
    ds.StudyDate, ds.StudyDescription = "20260101", "Demo screening mammogram (synthetic phantom)"
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "MG", 1, number
    ds.ImageLaterality, ds.Laterality, ds.ViewPosition = laterality, laterality, view
    # Chest wall at column 0: columns run towards anterior. CC: rows run medial to lateral -> for a
    # right breast stored lateral-up, that is towards the patient's left (L); MLO: towards the feet.
    column_direction = {"CC": {"R": "L", "L": "R"}, "MLO": {"R": "F", "L": "F"}}[view][laterality]
    ds.PatientOrientation = ["A", column_direction]
    ds.PixelSpacing = ds.ImagerPixelSpacing = [0.1, 0.1]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = [2000, 2400], [3000, 1600]
    ds.WindowCenterWidthExplanation = ["NORMAL", "HARDER"]
    ds.PresentationLUTShape = "IDENTITY"
    ds.PixelData = pixels.tobytes()
    return ds
