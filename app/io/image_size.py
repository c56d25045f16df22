"""Image sizes read from the first bytes of a PNG, JPEG, JPEG-LS or JPEG 2000 stream (nothing is
decoded), and the pixel budget every image is held to before its pixels are decoded."""

from __future__ import annotations

import struct
from pathlib import Path

from app.io.errors import StudyLoadError
from app.io.limits import HEADER_PEEK_BYTES, PIXEL_BUDGET

Size = tuple[int, int, int]  # (rows, columns, samples per pixel)
PNG_SAMPLES = {0: 1, 2: 3, 3: 3, 4: 4, 6: 4}  # colour type -> channels OpenCV decodes it to
JPEG_SOF = {*range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC} | {0xF7}  # SOF0-15 and JPEG-LS' SOF55
J2K_SIZ = b"\xff\x4f\xff\x51"  # start of codestream, then the image and tile size marker
ITEM = b"\xfe\xff\x00\xe0"
PIXEL_DATA = b"\xe0\x7f\x10\x00"


def check_pixel_budget(path: Path, rows: int, columns: int, frames: int = 1, samples: int = 1,
                       source: str = "its header") -> None:
    """StudyLoadError when an image declares more values than PIXEL_BUDGET (or a size below one)."""
    rows, columns, frames, samples = int(rows), int(columns), int(frames), int(samples)
    if min(rows, columns, frames, samples) < 1:
        raise StudyLoadError(path, f"{source} declares an empty image ({columns} x {rows})")
    values = rows * columns * frames * samples
    if values > PIXEL_BUDGET:
        extent = f"{columns} x {rows}" + (f" x {frames} frames" if frames > 1 else "")
        raise StudyLoadError(path, f"{source} declares {extent} ({values / 1e6:,.0f} million values), more than "
                                   f"the pixel budget of {PIXEL_BUDGET / 1e6:,.0f} million; not decoded")


def png_size(data: bytes) -> Size | None:
    if len(data) < 26 or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return height, width, PNG_SAMPLES.get(data[25], 4)


def jpeg_size(data: bytes, start: int = 0) -> Size | None:
    """From the first SOF marker of the JPEG (or JPEG-LS) stream at `start`; None before any."""
    at = start + 2  # after SOI
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            at += 2
            continue
        length = int.from_bytes(data[at + 2:at + 4], "big")
        if marker in JPEG_SOF and at + 10 <= len(data):
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return height, width, data[at + 9]
        if marker == 0xDA:  # start of scan: no frame header came first
            return None
        at += 2 + length
    return None


def j2k_size(data: bytes, start: int = 0) -> Size | None:
    at = data.find(J2K_SIZ, start)
    if at < 0 or at + 42 > len(data):
        return None
    xsiz, ysiz, xo, yo = struct.unpack(">IIII", data[at + 8:at + 24])
    return ysiz - yo, xsiz - xo, int.from_bytes(data[at + 40:at + 42], "big")


def j2k_sign(data: bytes, start: int = 0) -> tuple[bool, int] | None:
    """(signed, precision) of the first component, from the SIZ marker's Ssiz (ISO 15444-1 A.5.1)."""
    at = data.find(J2K_SIZ, start)
    if at < 0 or at + 43 > len(data):
        return None
    ssiz = data[at + 42]
    return bool(ssiz & 0x80), (ssiz & 0x7F) + 1


def first_frame_size(path: Path) -> Size | None:
    """The size the first compressed frame of an encapsulated DICOM declares in its own stream."""
    with open(path, "rb") as handle:
        data = handle.read(HEADER_PEEK_BYTES)
    at = data.find(PIXEL_DATA + b"OB\0\0\xff\xff\xff\xff")
    at = at + 12 if at >= 0 else _implicit_pixel_data(data)
    if at < 0 or data[at:at + 4] != ITEM:  # the basic offset table item comes first
        return None
    fragment = at + 8 + int.from_bytes(data[at + 4:at + 8], "little")
    if data[fragment:fragment + 4] != ITEM:
        return None
    stream = fragment + 8
    if data[stream:stream + 2] == b"\xff\xd8":
        return jpeg_size(data, stream)
    return j2k_size(data, stream)


def _implicit_pixel_data(data: bytes) -> int:
    at = data.find(PIXEL_DATA + b"\xff\xff\xff\xff")
    return at + 8 if at >= 0 else -1
