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
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.encaps import generate_fragments
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi, get_decoder
from pydicom.uid import (
    JPEG2000,
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
)

from app.core.cpu import usable_cores
from app.core.display import VoiLut, Window
from app.core.image import ImageInfo, LoadedImage, WindowPreset
from app.core.study import mammo_tag_from_name
from app.core.text import describe, without_bytes
from app.io.errors import NotDicomError, StudyLoadError
from app.io.image_size import ITEM, check_pixel_budget, j2k_sign
from app.io.limits import DEFERRED_VALUE_BYTES

# Which package brings a decoder for which family of transfer syntaxes.
CODEC_PACKAGE = {
    "JPEG-LS": "pyjpegls",
    "JPEG 2000": "pylibjpeg-openjpeg",
    "High-Throughput JPEG 2000": "pylibjpeg-openjpeg",
    "RLE": "pylibjpeg-rle",
    "JPEG": "pylibjpeg-libjpeg",
}
# Transfer syntaxes newer than the pydicom we ship (PS3.5 A.4.13, A.4.14): named when refused.
NEWER_TRANSFER_SYNTAXES = {
    "1.2.840.10008.1.2.8.1": "Deflated Image Frame Compression",
    "1.2.840.10008.1.2.4.110": "JPEG XL Lossless",
    "1.2.840.10008.1.2.4.111": "JPEG XL JPEG Recompression",
    "1.2.840.10008.1.2.4.112": "JPEG XL",
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
        ds = read_dataset(path, stop_before_pixels=True)
        if "Rows" not in ds or "Columns" not in ds:
            kind = _modality(ds) or "non-image"
            raise StudyLoadError(path, f"no pixel data ({kind} object)")
        _refuse_over_budget(path, ds)
        info = _info_from_dataset(path, ds)
        _require_decoder(path, info.transfer_syntax)  # refused at the scan, listed with the reason
        return info
    except StudyLoadError:
        raise
    except Exception as error:  # pydicom raises many kinds for damaged headers; each costs only this file
        raise StudyLoadError(path, f"unreadable DICOM header ({describe(error)})") from error


def _refuse_over_budget(path: Path, ds: Dataset) -> None:
    """The pixel budget from Rows, Columns, NumberOfFrames and SamplesPerPixel, before anything is decoded."""
    check_pixel_budget(path, ds.Rows, ds.Columns, _int(ds.get("NumberOfFrames")) or 1,
                       ds.get("SamplesPerPixel", 1) or 1)


def read_dataset(path: Path, *, stop_before_pixels: bool = False) -> Dataset:
    """The data set of a DICOM file, also of one written without the preamble and file meta.

    Older modalities wrote bare data sets (no 128-byte preamble, no group 0002). pydicom reads them
    with `force=True`; the transfer syntax they do not state is the encoding pydicom found
    (PS3.5 A.1: implicit VR little endian unless the elements say otherwise). A forced read that
    fails, does not start with a DICOM group, or finds no image attributes is not taken for DICOM.
    Header reads defer values over DEFERRED_VALUE_BYTES (read only if asked for).
    """
    defer = DEFERRED_VALUE_BYTES if stop_before_pixels else None
    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, defer_size=defer)
    except InvalidDicomError:
        pass
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, defer_size=defer, force=True)
        first = next(iter(ds.keys()), None)
    except Exception as error:  # whatever a forced read of non-DICOM bytes raises
        raise NotDicomError(path, f"not a DICOM data set ({describe(error)})") from error
    if first is None or first.group > 0x0008 or not ({"SOPClassUID", "Rows", "Modality"} & set(ds.dir())):
        raise NotDicomError(path, "not a DICOM data set")
    if "TransferSyntaxUID" not in ds.file_meta:
        implicit, little = ds.original_encoding
        if "PixelData" in ds and _is_encapsulated(ds):
            raise StudyLoadError(path, "compressed pixel data in a file without file meta: "
                                       "nothing says which codec wrote it")
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        )
    return ds


def _is_encapsulated(ds: Dataset) -> bool:
    """Encapsulated pixel data starts with an item tag (PS3.5 A.4)."""
    value = ds["PixelData"].value
    return isinstance(value, bytes) and value[:4] == ITEM


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
        modality=_modality(ds),
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
        pixel_spacing=_spacing(spacing),
        rescale_slope=float(ds.get("RescaleSlope", 1.0) or 1.0),
        rescale_intercept=float(ds.get("RescaleIntercept", 0.0) or 0.0),
        window_presets=_window_presets(ds),
        presentation_inverse=_presentation_inverse(photometric, shape),
        patient_orientation=(str(orientation[0]), str(orientation[1]))
        if isinstance(orientation, MultiValue) and len(orientation) == 2
        else None,
    )


def _presentation_inverse(photometric: str, shape: str) -> bool:
    """Whether the lowest P-value is white: one inversion, never two that cancel.

    MONOCHROME1 means minimum is white (PS3.3 C.7.6.3.1.2). In the DX, MG and IO image modules
    Presentation LUT Shape INVERSE *accompanies* MONOCHROME1 and names that same inversion, and
    IDENTITY means no change "other than to account for the value of Photometric Interpretation"
    (PS3.3 C.8.11.1.1.1); only MONOCHROME2 with INVERSE adds an inversion (C.11.6). Colour images
    have no presentation LUT.
    """
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        return False
    return photometric == "MONOCHROME1" or str(shape).strip().upper() == "INVERSE"


def decode_dicom(info: ImageInfo) -> LoadedImage:
    """Decode every frame; colour becomes RGB uint8, grey stays as stored values."""
    path = info.path
    _require_decoder(path, info.transfer_syntax)
    try:
        ds = read_dataset(path)
        if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
            raise StudyLoadError(path, "no pixel data in the file: it ends before the image (truncated?)")
        pixels = _pixel_array(ds, info)
    except AttributeError as error:
        raise StudyLoadError(path, "no pixel data in the file") from error
    except ValueError as error:
        text = str(error)
        if "less than expected" in text or "truncated" in text.lower():
            raise StudyLoadError(path, "truncated file: the pixel data is shorter than its header says") from error
        raise StudyLoadError(path, f"pixel data could not be decoded: {decoder_reasons(text)}") from error
    except (RuntimeError, NotImplementedError) as error:
        raise StudyLoadError(path, f"pixel data could not be decoded: {decoder_reasons(str(error))}") from error
    except (OSError, EOFError) as error:
        raise StudyLoadError(path, f"truncated or unreadable file ({error})") from error
    frames = _as_frames(pixels, info)
    if "ModalityLUTSequence" in ds and frames.ndim == 3:
        frames, info = _through_modality_lut(frames, ds, info)
    if info.photometric == "PALETTE COLOR":
        frames = _to_uint8(apply_color_lut(frames, ds), ds)
    elif frames.ndim == 4:
        frames = _to_uint8(frames, ds)
    info = _with_voi_luts(info, ds)
    return LoadedImage(info=info, frames=frames, stored_range=_range(frames))


def _through_modality_lut(frames: np.ndarray, ds: Dataset, info: ImageInfo) -> tuple[np.ndarray, ImageInfo]:
    """A Modality LUT Sequence (PS3.3 C.11.1) is a table, not a line: its output values (integers of
    at most 16 bits) become the values the viewer windows, with an identity rescale, so windows,
    VOI LUTs and presets all work in modality units as the standard defines them."""
    try:
        mapped = apply_modality_lut(frames, ds)
    except (AttributeError, ValueError, TypeError, IndexError) as error:
        raise StudyLoadError(info.path, f"unusable Modality LUT Sequence ({error})") from error
    return np.ascontiguousarray(mapped), replace(info, rescale_slope=1.0, rescale_intercept=0.0)


def _require_decoder(path: Path, transfer_syntax: str) -> None:
    """Refuse, naming the syntax and what would decode it, what no installed decoder takes."""
    if not transfer_syntax:
        return
    uid = UID(transfer_syntax)
    if not uid.is_transfer_syntax:
        name = NEWER_TRANSFER_SYNTAXES.get(str(uid))
        what = f"{uid} ({name})" if name else f"{uid}, not a transfer syntax pydicom {pydicom.__version__} knows"
        raise StudyLoadError(path, f"unsupported transfer syntax {what}: convert the file to an "
                                   "uncompressed syntax (e.g. dcmtk's `dcmconv +te` or `gdcmconv --raw`)"
                                   " or use a DICOM library release that decodes it")
    if not uid.is_compressed:
        return
    try:
        decoder = get_decoder(uid)
    except NotImplementedError as error:
        # pynetdicom, once imported, teaches pydicom newer syntaxes (Deflated Image Frame Compression): they
        # land here rather than above, and still need the same remedy.
        raise StudyLoadError(path, f"unsupported transfer syntax {uid.name} ({uid}): no image decoder "
                                   "exists for it here (video and other non-image syntaxes are not read); "
                                   "convert an image to an uncompressed syntax (e.g. dcmtk's `dcmconv +te` or "
                                   "`gdcmconv --raw`)") from error
    if not decoder.is_available:
        package = next((pkg for prefix, pkg in CODEC_PACKAGE.items() if uid.name.startswith(prefix)), "pylibjpeg")
        raise StudyLoadError(path, f"no decoder for {uid.name}: install {package}")


def _pixel_array(ds: Dataset, info: ImageInfo) -> np.ndarray:
    """Pillow for grey JPEG 2000 where it has it (see PILLOW_J2K_SYNTAXES), else pydicom's own choice.

    When a JPEG 2000 code stream's signedness differs from the header's Pixel Representation, the
    header wins: Pixel Representation is what defines the stored values (PS3.3 C.7.6.3.1), and some
    encoders write the code stream's sign wrongly. Pillow shifts every value by half the range
    there, so pydicom's decoder reads such a file, and it follows the header.
    """
    uid = info.transfer_syntax
    if uid in PILLOW_J2K_SYNTAXES and info.samples_per_pixel == 1:
        header_signed = int(ds.get("PixelRepresentation", 0)) == 1
        stream = j2k_stream_sign(ds)
        if stream is not None and stream[0] != header_signed:
            return _header_signed_j2k(ds, info, stream)
        if "pillow" in get_decoder(UID(uid)).available_plugins:
            try:
                ds.pixel_array_options(decoding_plugin="pillow")
                return ds.pixel_array
            except (ValueError, RuntimeError, NotImplementedError, OSError):
                ds.pixel_array_options(decoding_plugin="")  # let pydicom's default decoder have its say
    return ds.pixel_array


def j2k_stream_sign(ds: Dataset) -> tuple[bool, int] | None:
    """(signed, precision) of the first component from the SIZ marker of the first frame (ISO 15444-1 A.5.1)."""
    try:
        items = generate_fragments(ds.PixelData)
        next(items)  # the Basic Offset Table item comes first (PS3.5 A.4)
        return j2k_sign(next(items))  # finds the SIZ marker also inside a JP2 wrapper
    except (StopIteration, ValueError, TypeError, AttributeError):
        return None


def _header_signed_j2k(ds: Dataset, info: ImageInfo, stream: tuple[bool, int]) -> np.ndarray:
    """pydicom's decoder, which reads the samples as the header says; refused where that is not possible."""
    ds.pixel_array_options(decoding_plugin="")
    pixels = ds.pixel_array
    signed, precision = stream
    if signed and pixels.dtype.kind == "u" and precision <= 16 and pixels.max() >= (1 << (precision - 1)):
        raise StudyLoadError(info.path, "the JPEG 2000 code stream holds negative values but Pixel "
                                        "Representation says unsigned: refused rather than shown wrongly")
    return pixels


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


def _spacing(value) -> tuple[float, float] | None:
    """(row, column) spacing in mm; None unless both are positive numbers (files write 0\\0 for unknown)."""
    values = _floats(value)
    if len(values) != 2 or not all(np.isfinite(v) and v > 0 for v in values):
        return None
    return values[0], values[1]


def _modality(ds: Dataset) -> str:
    """Modality when it is a valid code string (PS3.5 6.2 CS: at most 16 of A-Z, 0-9, space, _), else "".

    A damaged length can make the value swallow the elements after it (the patient's name among
    them); such a value never reaches a reason, a log line or the screen.
    """
    value = ds.get("Modality", "")
    text = value.strip() if isinstance(value, str) else ""
    return text if len(text) <= 16 and all(c.isascii() and (c.isupper() or c.isdigit() or c in " _") for c in text) else ""


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


def decoder_reasons(text: str, limit: int = 160) -> str:
    """pydicom's error as one line: each plugin's reason kept (shortened), not just the heading."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "unknown error"
    head, reasons = lines[0], lines[1:]
    if not reasons:
        return _shorten(head, limit * 2)
    head = head.rstrip(":").replace("Unable to decode as exceptions were raised by all available plugins",
                                    "every decoder failed")
    return f"{head}: " + "; ".join(_shorten(reason, limit) for reason in reasons)


def _shorten(text: str, limit: int) -> str:
    text = without_bytes(text)  # a plugin may quote raw pixel or header bytes
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
