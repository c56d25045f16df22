"""DICOM display conformance: every reachable file through our display path against pydicom's own.

`judge(path)` renders frame 0 through the Qt-free path the viewer draws with (reader -> presets ->
`ViewportState.transfer()` -> hanging flips) and through an independent rendering made from
pydicom's reference functions only (`pixel_array`, `apply_modality_lut`, `apply_voi_lut`, the
photometric / presentation-LUT rule of PS3.3, the mammography hanging rule), then compares them:
correlation, inversion (correlation with the inverted reference) and mirroring (with the mirrored
reference). A file is either shown right or refused with a reason; never shown wrong, never a traceback.

`python3 tests/dicom_conformance.py` writes the table `tests/dicom_conformance.md`.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, pack_bits
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.core.hanging import reading_flips  # noqa: E402
from app.core.viewport_state import ViewportState  # noqa: E402
from app.io.errors import StudyLoadError  # noqa: E402
from app.io.study_loader import decode_image, read_info  # noqa: E402
from tests.dicom_factory import write_dicom  # noqa: E402

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
MIN_CORRELATION = 0.9
# Both breasts' chest walls meet in the middle: rows of a right view run towards posterior on screen.
MAMMO_ROW_DIRECTION = {"R": "P", "L": "A"}


@dataclass(frozen=True)
class Verdict:
    path: Path
    outcome: str  # "shown right" | "refused" | "refused by both" | "WRONG: ..." | "CRASH: ..."
    detail: str = ""
    correlation: float | None = None

    @property
    def ok(self) -> bool:
        return not self.outcome.startswith(("WRONG", "CRASH"))


def corpus_files() -> list[Path]:
    """pydicom's bundled test files and, when installed, the pydicom-data package's."""
    folders = [PYDICOM_FILES]
    try:
        import data_store  # the pydicom-data package

        folders.append(Path(data_store.__file__).parent / "data")
    except ImportError:
        pass
    files = []
    for folder in folders:
        files += sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in (".dcm", ""))
    return files


def judge(path: Path) -> Verdict:
    try:
        ours, window = our_rendering(path)
    except StudyLoadError as error:
        reason = error.reason
        if not reason or reason.rstrip().endswith(":"):
            return Verdict(path, "WRONG: refusal without a reason", reason)
        decodable = reference_rendering(path) is not None
        return Verdict(path, "refused" if decodable else "refused by both", reason)
    except Exception as error:  # a traceback is the failure this judges
        return Verdict(path, f"CRASH: {type(error).__name__}", str(error)[:200])
    reference = reference_rendering(path, window)
    if reference is None:
        return Verdict(path, "WRONG: shown although pydicom cannot decode it")
    if ours.shape != reference.shape:
        return Verdict(path, "WRONG: size differs", f"{ours.shape} vs {reference.shape}")
    if np.ptp(reference) == 0 or np.ptp(ours) == 0:
        same = np.ptp(reference) == np.ptp(ours) == 0
        return Verdict(path, "shown right" if same else "WRONG: one of the two is flat", "flat image")
    r = _corr(ours, reference)
    inverted = _corr(ours, -reference)
    mirrored = max(_corr(ours, reference[:, ::-1]), _corr(ours, reference[::-1, :]))
    if inverted > r:
        return Verdict(path, "WRONG: inverted", f"r={r:.3f}", r)
    if mirrored > r + 0.05:
        return Verdict(path, "WRONG: mirrored", f"r={r:.3f} mirrored r={mirrored:.3f}", r)
    if r < MIN_CORRELATION:
        return Verdict(path, "WRONG: differs", f"r={r:.3f}", r)
    return Verdict(path, "shown right", f"r={r:.3f}", r)


def our_rendering(path: Path) -> tuple[np.ndarray, tuple[float, float] | None]:
    """Frame 0 as the viewer draws it by default (0..255, white high, after the hanging's flips),
    and the default linear window it chose (centre, width), if any."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = read_info(path)
        image = decode_image(info)
    flip_h, flip_v = reading_flips(image.info, image.frame(0))
    state = ViewportState(image, flip_h=flip_h, flip_v=flip_v)
    grey = state.transfer().apply(image.frame(0)).astype(np.float64)
    if grey.ndim == 3:
        grey = grey.mean(axis=-1)
    grey = grey[:, ::-1] if flip_h else grey
    window = (state.window.center, state.window.width) if state.window and not image.is_rgb else None
    return (grey[::-1, :] if flip_v else grey), window


def reference_rendering(path: Path, default_window: tuple[float, float] | None = None) -> np.ndarray | None:
    """Frame 0 from pydicom's reference functions alone; None where pydicom cannot decode it.

    A file without a VOI gets `default_window` (centre, width in modality units): which window a
    viewer opens with is its choice (Auto, or a CT preset), the maths applying it is pydicom's.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, force=True)
            if "TransferSyntaxUID" not in ds.file_meta:
                implicit, little = ds.original_encoding
                ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
            pixels = ds.pixel_array
    except Exception:
        return None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1))
    frame = pixels[0] if frames > 1 else pixels
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    if photometric == "PALETTE COLOR":
        return apply_color_lut(frame, ds).astype(np.float64).mean(axis=-1)
    if samples == 3:
        return frame.astype(np.float64).mean(axis=-1)
    values = apply_modality_lut(frame, ds)
    if "VOILUTSequence" not in ds and not ("WindowCenter" in ds and "WindowWidth" in ds) and default_window:
        ds.WindowCenter, ds.WindowWidth = default_window
    if "VOILUTSequence" in ds or ("WindowCenter" in ds and "WindowWidth" in ds):
        values = apply_voi_lut(values, ds, index=0)
    values = values.astype(np.float64)
    # PS3.3 C.7.6.3.1.2 and C.8.11.1.1.1: MONOCHROME1, and INVERSE with it, are one inversion.
    shape = str(ds.get("PresentationLUTShape", "")).strip().upper()
    if photometric == "MONOCHROME1" or (photometric == "MONOCHROME2" and shape == "INVERSE"):
        values = -values
    return _mammography_flips(ds, values)


def _mammography_flips(ds: Dataset, values: np.ndarray) -> np.ndarray:
    """Only MG images are turned for hanging: rows run towards the chest wall in the middle, and a
    CC view has its lateral side up."""
    laterality = str(ds.get("ImageLaterality", "") or ds.get("Laterality", "")).strip().upper()
    orientation = ds.get("PatientOrientation")
    if ds.get("Modality") != "MG" or laterality not in MAMMO_ROW_DIRECTION or not orientation:
        return values
    if MAMMO_ROW_DIRECTION[laterality] not in str(orientation[0]):
        values = values[:, ::-1]
    lateral_up = {"R": "L", "L": "R"}[laterality]
    if ds.get("ViewPosition") == "CC" and lateral_up not in str(orientation[1]):
        values = values[::-1, :]
    return values


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator else 0.0


# ---- files made for each rule ---------------------------------------------------------------------
def _gradient(rows: int = 64, columns: int = 48, top: int = 4095) -> np.ndarray:
    """An image no flip or inversion maps onto itself: values rise to the right and downwards."""
    y, x = np.mgrid[0:rows, 0:columns]
    return ((x * 3 + y) * top / (columns * 3 + rows)).astype(np.uint16)


def generated_files(folder: Path) -> list[Path]:
    """One small file per display rule the pydicom corpus does not pin down."""
    folder.mkdir(parents=True, exist_ok=True)
    g = _gradient()
    files = []
    for photometric in ("MONOCHROME1", "MONOCHROME2"):
        for shape in ("", "IDENTITY", "INVERSE"):
            extra = {"PresentationLUTShape": shape} if shape else {}
            name = f"dx_{photometric.lower()}_{shape.lower() or 'noshape'}.dcm"
            files.append(write_dicom(folder / name, g, Modality="DX", PhotometricInterpretation=photometric,
                                     BitsStored=12, HighBit=11, **extra))
    files.append(write_dicom(folder / "cr_right_tibia.dcm", g, Modality="CR", ImageLaterality="R",
                             ViewPosition="AP", PatientOrientation=["L", "F"], BitsStored=12, HighBit=11))
    files.append(write_dicom(folder / "dx_chest_left.dcm", g, Modality="DX", ImageLaterality="L",
                             ViewPosition="PA", PatientOrientation=["R", "F"], BitsStored=12, HighBit=11))
    for laterality, row in (("R", "A"), ("R", "P"), ("L", "A"), ("L", "P")):
        files.append(write_dicom(folder / f"mg_{laterality}_cc_rows_{row}.dcm", g, Modality="MG",
                                 ImageLaterality=laterality, ViewPosition="CC", PatientOrientation=[row, "L"],
                                 BitsStored=12, HighBit=11))
    mask = np.zeros((64, 48), np.uint8)
    mask[30:32, 20:22] = 1  # 4 of 3072 pixels: below the 0.5 % a percentile window keeps
    files.append(write_dicom(folder / "two_valued_mask.dcm", mask, Modality="OT"))
    flat_tissue = np.where(g > 2000, 700, 0).astype(np.uint16)
    files.append(write_dicom(folder / "two_valued_background_and_tissue.dcm", flat_tissue, Modality="OT"))
    files.append(_one_bit(folder / "one_bit.dcm"))
    files.append(write_dicom(folder / "ct_signed_rescaled.dcm", (g.astype(np.int16) - 1024), Modality="CT",
                             RescaleSlope=1, RescaleIntercept=-1024, WindowCenter=-500, WindowWidth=3000))
    files.append(write_dicom(folder / "mr_multiframe.dcm", np.stack([g, g[::-1], g[:, ::-1]]), Modality="MR"))
    files.append(_no_file_meta(folder / "no_file_meta.dcm", g))
    files.append(_j2k_pixel_representation_mismatch(folder / "j2k_header_unsigned_stream_signed.dcm"))
    return [f for f in files if f is not None]


def _one_bit(path: Path) -> Path:
    bits = (_gradient() > 2000).astype(np.uint8)
    path = write_dicom(path, bits, Modality="OT")
    ds = pydicom.dcmread(path)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 1, 0
    ds.PixelData = pack_bits(bits)
    ds.save_as(path)
    return path


def _no_file_meta(path: Path, pixels: np.ndarray) -> Path:
    """A bare implicit-VR data set: no preamble, no 'DICM', no group 0002 (older modalities)."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.4", generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientName, ds.PatientID = "MR", "NO^META", "NM1"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.astype("<u2").tobytes()
    pydicom.dcmwrite(path, ds, implicit_vr=True, little_endian=True)
    return path


def _j2k_pixel_representation_mismatch(path: Path) -> Path | None:
    """pydicom's lossless JPEG 2000 MR (signed stream, positive values) with the header saying unsigned."""
    return _j2k_header_says_unsigned("MR_small_jp2klossless.dcm", path)


def j2k_with_negative_values_header_unsigned(path: Path) -> Path | None:
    """A signed stream holding negative values under a header that says unsigned: must be refused."""
    return _j2k_header_says_unsigned("693_J2KI.dcm", path)


def _j2k_header_says_unsigned(source_name: str, path: Path) -> Path | None:
    source = PYDICOM_FILES / source_name
    if not source.is_file():
        return None
    ds = pydicom.dcmread(source)
    ds.PixelRepresentation = 0
    ds.save_as(path)
    return path


def deflated_image_frame_file(path: Path) -> Path:
    """A file in Deflated Image Frame Compression (1.2.840.10008.1.2.8.1), newer than our pydicom."""
    import zlib

    g = _gradient()
    path = write_dicom(path, g, Modality="OT")
    ds = pydicom.dcmread(path)
    ds.PixelData = encapsulate([zlib.compress(g.astype("<u2").tobytes())])
    ds["PixelData"].VR = "OB"
    # pydicom will not write a syntax it does not know: write a known one of the same length, then swap it.
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit  # "1.2.840.10008.1.2.4.50", 22 bytes
    ds.save_as(path)
    path.write_bytes(path.read_bytes().replace(b"1.2.840.10008.1.2.4.50", b"1.2.840.10008.1.2.8.1\0", 1))
    return path


def main() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        files = [*corpus_files(), *generated_files(Path(tmp) / "generated")]
        verdicts = [judge(p) for p in files]
        lines = [
            "# DICOM display conformance",
            "",
            "Made by `python3 tests/dicom_conformance.py` (checked file by file by `tests/test_dicom_conformance.py`).",
            "Each file is rendered through the viewer's Qt-free display path and through pydicom's reference",
            f"functions; 'shown right' means correlation >= {MIN_CORRELATION} with the reference, no better match",
            "inverted or mirrored. 'refused' files list the reason the reader sees.",
            "",
            "| file | source | outcome | detail |",
            "| --- | --- | --- | --- |",
        ]
        for v in verdicts:
            source = "generated" if "generated" in v.path.parts else v.path.parent.name
            detail = v.detail.replace("|", "/")
            lines.append(f"| {v.path.name} | {source} | {v.outcome} | {detail[:160]} |")
        counts: dict[str, int] = {}
        for v in verdicts:
            counts[v.outcome] = counts.get(v.outcome, 0) + 1
        lines += ["", "Totals: " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())) + f" (of {len(verdicts)})"]
    out = Path(__file__).with_name("dicom_conformance.md")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-1:]))


if __name__ == "__main__":
    main()
