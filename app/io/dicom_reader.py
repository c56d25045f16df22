"""DICOM files through pydicom: header facts without pixels, then decoded pixels ready for display.

Decoding goes through pydicom's decoder registry and its plugins (pylibjpeg, openjpeg, rle,
libjpeg, pyjpegls); this module only turns their results and errors into our types.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_voi, get_decoder
from pydicom.uid import UID, JPEG2000, JPEG2000Lossless

from app.core.cpu import usable_cores
from app.core.display import VoiLut, Window
from app.core.image import ImageInfo, LoadedImage, WindowPreset
from app.core.study import mammo_tag_from_name
from app.core.text import describe
from app.io.errors import StudyLoadError
from app.io.image_size import check_pixel_budget
from app.io.limits import DEFERRED_VALUE_BYTES

# Which package brings a decoder for which family of transfer syntaxes.
CODEC_PACKAGE = {
    "JPEG-LS": "pyjpegls",
    "JPEG 2000": "pylibjpeg-openjpeg",
    "High-Throughput JPEG 2000": "pylibjpeg-openjpeg",
    "RLE": "pylibjpeg-rle",
    "JPEG": "pylibjpeg-libjpeg",
}
VIEW_CODE_MEANINGS = {"cranio-caudal": "CC", "medio-lateral oblique": "MLO"}

# JPEG 2000 is what large mammograms arrive in, and both of pydicom's decoders for it hold the GIL,
# so the decode threads take turns. The OpenJPEG inside Pillow can at least spread one image over
# the cores: it reads OPJ_NUM_THREADS whenever it makes a decoder (pylibjpeg-openjpeg's ignores it).
# A 3328 x 2560 16-bit lossless image: ~0.9 s with pylibjpeg, ~0.55 s with Pillow on 2 cores.
PILLOW_J2K_SYNTAXES = {JPEG2000Lossless, JPEG2000}
os.environ.setdefault("OPJ_NUM_THREADS", str(usable_cores()))  # set at import, before any decode thread runs


def is_dicom_file(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def read_dicom_info(path: Path) -> ImageInfo:
    """Header facts of a DICOM image file; StudyLoadError when it is not one, cannot be read or is too large."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, defer_size=DEFERRED_VALUE_BYTES)
        if "Rows" not in ds or "Columns" not in ds:
            kind = ds.get("Modality") or "non-image"
            raise StudyLoadError(path, f"no pixel data ({kind} object)")
        _refuse_over_budget(path, ds)
        return _info_from_dataset(path, ds)
    except StudyLoadError:
        raise
    except Exception as error:  # pydicom raises many kinds for damaged headers; each costs only this file
        raise StudyLoadError(path, f"unreadable DICOM header ({describe(error)})") from error


def _refuse_over_budget(path: Path, ds: Dataset) -> None:
    """The pixel budget from Rows, Columns, NumberOfFrames and SamplesPerPixel, before anything is decoded."""
    check_pixel_budget(path, ds.Rows, ds.Columns, _int(ds.get("NumberOfFrames")) or 1,
                       ds.get("SamplesPerPixel", 1) or 1)


def _info_from_dataset(path: Path, ds: Dataset) -> ImageInfo:
    tsyntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    name_tag = mammo_tag_from_name(path.name)
    laterality = _laterality(ds) or (name_tag[0] if name_tag else None)
    view = _view(ds) or (name_tag[1] if name_tag else None)
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    orientation = ds.get("PatientOrientation")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    shape = ds.get("PresentationLUTShape", "")
    return ImageInfo(
        path=path,
        source_format="dicom",
        modality=str(ds.get("Modality", "")).strip(),
        laterality=laterality,
        view=view,
        study_uid=_text(ds, "StudyInstanceUID"),
        series_uid=_text(ds, "SeriesInstanceUID"),
        sop_uid=_text(ds, "SOPInstanceUID"),
        study_description=_text(ds, "StudyDescription") or "",
        series_description=_text(ds, "SeriesDescription") or "",
        patient_name=str(ds.get("PatientName", "") or ""),
        patient_id=_text(ds, "PatientID") or "",
        study_date=_text(ds, "StudyDate") or "",
        instance_number=_int(ds.get("InstanceNumber")),
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        frames=_int(ds.get("NumberOfFrames")) or 1,
        samples_per_pixel=int(ds.get("SamplesPerPixel", 1)),
        photometric=photometric,
        bits_stored=int(ds.get("BitsStored", ds.get("BitsAllocated", 8))),
        transfer_syntax=str(tsyntax or ""),
        pixel_spacing=(float(spacing[0]), float(spacing[1])) if spacing and len(spacing) == 2 else None,
        rescale_slope=float(ds.get("RescaleSlope", 1.0) or 1.0),
        rescale_intercept=float(ds.get("RescaleIntercept", 0.0) or 0.0),
        window_presets=_window_presets(ds),
        presentation_inverse=(photometric == "MONOCHROME1") != (shape == "INVERSE"),
        patient_orientation=(str(orientation[0]), str(orientation[1]))
        if isinstance(orientation, MultiValue) and len(orientation) == 2
        else None,
    )


def decode_dicom(info: ImageInfo) -> LoadedImage:
    """Decode every frame; colour becomes RGB uint8, grey stays as stored values."""
    path = info.path
    _require_decoder(path, info.transfer_syntax)
    try:
        ds = pydicom.dcmread(path)
        pixels = _pixel_array(ds, info)
    except AttributeError as error:
        raise StudyLoadError(path, "no pixel data in the file") from error
    except ValueError as error:
        text = str(error)
        if "less than expected" in text or "truncated" in text.lower():
            raise StudyLoadError(path, "truncated file: the pixel data is shorter than its header says") from error
        raise StudyLoadError(path, f"pixel data could not be decoded: {_first_line(text)}") from error
    except (RuntimeError, NotImplementedError) as error:
        raise StudyLoadError(path, f"pixel data could not be decoded: {_first_line(str(error))}") from error
    except (OSError, EOFError) as error:
        raise StudyLoadError(path, f"truncated or unreadable file ({error})") from error
    frames = _as_frames(pixels, info)
    if info.photometric == "PALETTE COLOR":
        frames = _to_uint8(apply_color_lut(frames, ds), ds)
    elif frames.ndim == 4:
        frames = _to_uint8(frames, ds)
    info = _with_voi_luts(info, ds)
    return LoadedImage(info=info, frames=frames, stored_range=_range(frames))


def _require_decoder(path: Path, transfer_syntax: str) -> None:
    if not transfer_syntax:
        return
    uid = UID(transfer_syntax)
    if not uid.is_compressed:
        return
    try:
        decoder = get_decoder(uid)
    except NotImplementedError as error:
        raise StudyLoadError(path, f"unsupported transfer syntax {uid.name}") from error
    if not decoder.is_available:
        package = next((pkg for prefix, pkg in CODEC_PACKAGE.items() if uid.name.startswith(prefix)), "pylibjpeg")
        raise StudyLoadError(path, f"no decoder for {uid.name}: install {package}")


def _pixel_array(ds: Dataset, info: ImageInfo) -> np.ndarray:
    """Pillow for grey JPEG 2000 where it has it (see PILLOW_J2K_SYNTAXES), else pydicom's own choice."""
    uid = info.transfer_syntax
    if uid in PILLOW_J2K_SYNTAXES and info.samples_per_pixel == 1 and "pillow" in get_decoder(UID(uid)).available_plugins:
        try:
            ds.pixel_array_options(decoding_plugin="pillow")
            return ds.pixel_array
        except (ValueError, RuntimeError, NotImplementedError, OSError):
            ds.pixel_array_options(decoding_plugin="")  # let pydicom's default decoder have its say
    return ds.pixel_array


def _as_frames(pixels: np.ndarray, info: ImageInfo) -> np.ndarray:
    colour = info.samples_per_pixel == 3
    if (info.frames == 1 and not colour and pixels.ndim == 2) or (info.frames == 1 and colour and pixels.ndim == 3):
        return pixels[np.newaxis]
    return pixels


def _to_uint8(rgb: np.ndarray, ds: Dataset) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return rgb
    top = float(rgb.max()) or 1.0
    bits = int(ds.get("BitsStored", 16))
    scale = 255.0 / max((1 << bits) - 1, top) if top > 255 else 1.0
    return np.clip(np.rint(rgb * scale), 0, 255).astype(np.uint8)


def _range(frames: np.ndarray) -> tuple[float, float]:
    return float(frames.min()), float(frames.max())


def _window_presets(ds: Dataset) -> tuple[WindowPreset, ...]:
    centres, widths = _floats(ds.get("WindowCenter")), _floats(ds.get("WindowWidth"))
    names = [str(n) for n in _list(ds.get("WindowCenterWidthExplanation"))]
    presets = []
    for i, (centre, width) in enumerate(zip(centres, widths)):
        if width >= 1:
            name = names[i] if i < len(names) and names[i] else f"File {i + 1}"
            presets.append(WindowPreset(name, Window(centre, width)))
    return tuple(presets)


def _with_voi_luts(info: ImageInfo, ds: Dataset) -> ImageInfo:
    """VOI LUT Sequence items become the first presets; pydicom's `apply_voi` reads each table."""
    luts = []
    for index, item in enumerate(ds.get("VOILUTSequence", [])):
        try:
            count, first, bits = (int(v) for v in item.LUTDescriptor)
            count = count or 65536
            if first >= 1 << 15 and ds.get("PixelRepresentation", 0) == 1:
                first -= 1 << 16  # first value mapped is signed for signed pixel data
            inputs = np.arange(first, first + count, dtype=np.int32 if first < 0 else np.uint32)
            table = np.asarray(apply_voi(inputs, ds, index=index), dtype=np.int64)
        except (AttributeError, ValueError, TypeError, NotImplementedError):
            continue
        explanation = str(item.get("LUTExplanation", "") or f"VOI LUT {index + 1}")
        luts.append(WindowPreset(explanation, voi_lut=VoiLut(first, table, bits, explanation)))
    return replace(info, window_presets=(*luts, *info.window_presets)) if luts else info


def _laterality(ds: Dataset) -> str | None:
    for keyword in ("ImageLaterality", "Laterality"):
        value = str(ds.get(keyword, "") or "").strip().upper()
        if value in ("R", "L"):
            return value
    for group in ds.get("SharedFunctionalGroupsSequence", []):
        for frame in group.get("FrameAnatomySequence", []):
            value = str(frame.get("FrameLaterality", "")).strip().upper()
            if value in ("R", "L"):
                return value
    return None


def _view(ds: Dataset) -> str | None:
    value = str(ds.get("ViewPosition", "") or "").strip().upper()
    if value:
        return value
    for code in ds.get("ViewCodeSequence", []):
        meaning = str(code.get("CodeMeaning", "")).strip().lower()
        if meaning in VIEW_CODE_MEANINGS:
            return VIEW_CODE_MEANINGS[meaning]
    return None


def _text(ds: Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    return str(value).strip() if value not in (None, "") else None


def _int(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, MultiValue)) else [value]


def _floats(value) -> list[float]:
    out = []
    for v in _list(value):
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            continue
    return out


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "unknown error"
