"""PNG and JPEG files through OpenCV: 8- and 16-bit grey, RGB; facts about them from their names."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from app.core.image import ImageInfo, LoadedImage
from app.core.study import mammo_tag_from_name
from app.core.text import first_line
from app.io.errors import StudyLoadError
from app.io.image_size import check_pixel_budget, jpeg_size, png_size
from app.io.limits import HEADER_PEEK_BYTES

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"


def raster_format(path: Path) -> str | None:
    """'png' or 'jpeg' from the file's first bytes, whatever its extension; None otherwise."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head.startswith(PNG_SIGNATURE):
        return "png"
    if head.startswith(JPEG_SIGNATURE):
        return "jpeg"
    return None


def read_raster_info(path: Path, source_format: str) -> ImageInfo:
    """What the name tells (laterality and view, e.g. `0_L-CC.png`) and the size its header declares.

    A file cut short (no PNG IEND chunk or JPEG end-of-image marker), or declaring more pixels than
    the budget, is refused here already.
    """
    if not _ends_complete(path, source_format):
        raise StudyLoadError(path, f"truncated {source_format.upper()} file (its end marker is missing)")
    rows, columns, samples = _declared_size(path, source_format)
    tag = mammo_tag_from_name(path.name)
    return ImageInfo(
        path=path,
        source_format=source_format,
        modality="MG" if tag else "",
        laterality=tag[0] if tag else None,
        view=tag[1] if tag else None,
        rows=rows,
        columns=columns,
    )


def _declared_size(path: Path, source_format: str) -> tuple[int, int, int]:
    """(rows, columns, samples) from the PNG IHDR or JPEG frame header, held to the pixel budget."""
    with open(path, "rb") as handle:
        head = handle.read(HEADER_PEEK_BYTES)
    size = png_size(head) if source_format == "png" else jpeg_size(head)
    if size is None:
        raise StudyLoadError(path, f"no {source_format.upper()} image header in its first "
                                   f"{HEADER_PEEK_BYTES >> 10} KB")
    check_pixel_budget(path, *size[:2], samples=size[2])
    return size


def _ends_complete(path: Path, source_format: str) -> bool:
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - 64))
        tail = handle.read()
    if source_format == "png":
        return b"IEND" in tail
    return b"\xff\xd9" in tail


def decode_raster(info: ImageInfo) -> LoadedImage:
    path = info.path
    try:
        buffer = np.fromfile(path, dtype=np.uint8)  # not cv2.imread: it cannot open non-ASCII paths everywhere
    except OSError as error:
        raise StudyLoadError(path, f"unreadable file ({error.strerror})") from error
    try:
        pixels = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    except cv2.error as error:  # OpenCV's own limits, e.g. more than 2^30 pixels
        raise StudyLoadError(path, f"OpenCV could not decode it ({first_line(error)})") from error
    if pixels is None or pixels.size == 0:
        raise StudyLoadError(path, f"truncated or corrupt {info.source_format.upper()} file")
    if pixels.ndim == 3:
        pixels = _colour_to_rgb_or_grey(pixels)
    frames = pixels[np.newaxis]
    rgb = frames.ndim == 4
    info = replace(info, rows=int(pixels.shape[0]), columns=int(pixels.shape[1]), samples_per_pixel=3 if rgb else 1,
                   photometric="RGB" if rgb else "MONOCHROME2", bits_stored=16 if pixels.dtype == np.uint16 else 8)
    return LoadedImage(info=info, frames=frames, stored_range=(float(frames.min()), float(frames.max())))


def _colour_to_rgb_or_grey(pixels: np.ndarray) -> np.ndarray:
    """BGR(A) to RGB; a colour file whose channels are all equal is grey and becomes one channel."""
    bgr = pixels[..., :3]
    if np.array_equal(bgr[..., 0], bgr[..., 1]) and np.array_equal(bgr[..., 1], bgr[..., 2]):
        return np.ascontiguousarray(bgr[..., 0])
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return rgb if rgb.dtype == np.uint8 else (rgb >> 8).astype(np.uint8)
