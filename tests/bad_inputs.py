"""A seeded folder of damaged and hostile inputs mixed with good images, for the robustness tests.

`write_bad_inputs(folder, seed)` writes a few hundred files of the kinds a PACS export, a USB stick
or a half-copied folder produces, and returns what each one is:
- "good": must be opened / predicted;
- "bad": must be listed as a problem with its name and reason;
- "fuzzed": bytes flipped at random: either opened or listed, never lost and never fatal.
"""

from __future__ import annotations

import os
import socket
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from pydicom.dataset import FileDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, JPEGBaseline8Bit, RLELossless,
                         SecondaryCaptureImageStorage)

from tests.dicom_factory import dicom_dataset as factory_dataset

GOOD, BAD, FUZZED = "good", "bad", "fuzzed"


@dataclass(frozen=True)
class InputFile:
    path: Path
    expect: str  # GOOD | BAD | FUZZED
    kind: str  # what was done to it, e.g. "truncated at 312"


def write_bad_inputs(folder: Path, seed: int = 0, scale: int = 1) -> list[InputFile]:
    """About 300 files x `scale` under `folder`; ~20 of them good (never scaled)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    made = _good_files(folder, rng)
    template = dicom_bytes(rng.integers(0, 4095, (64, 64)).astype(np.uint16))
    header_end = template.index(b"\xe0\x7f\x10\x00")  # the Pixel Data element
    for offset in sorted(set(rng.integers(1, header_end + 200, 80 * scale).tolist())):
        made.append(_write(folder / f"truncated-{offset:05d}.dcm", template[:offset], BAD, f"truncated at {offset}"))
    for i in range(100 * scale):
        data = bytearray(template)
        for position in rng.integers(132, header_end, int(rng.integers(1, 4))):
            data[position] ^= int(rng.integers(1, 256))
        made.append(_write(folder / f"flipped-{i:04d}.dcm", bytes(data), FUZZED, "header bytes flipped"))
    for i in range(40 * scale):
        head = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"\0" * 128 + b"DICM"][i % 4]
        made.append(_write(folder / f"random-{i:03d}.bin", head + rng.bytes(int(rng.integers(0, 5000))), BAD,
                           "random bytes"))
    made += _broken_dicoms(folder, rng) + _huge_declared_sizes(folder, rng) + _odd_entries(folder, rng)
    return made


# ---- good files ------------------------------------------------------------------------------------
def _good_files(folder: Path, rng: np.random.Generator) -> list[InputFile]:
    made = []
    for i in range(6):
        made.append(_png(folder / f"good-grey-{i}.png", rng.integers(0, 255, (48 + i, 64), np.uint8)))
    made.append(_png(folder / "good-rgb-0.png", rng.integers(0, 255, (40, 56, 3), np.uint8)))
    made.append(_png(folder / "good-rgb-1.png", rng.integers(0, 255, (64, 40, 3), np.uint8)))
    made.append(_png(folder / "good-16bit.png", rng.integers(0, 65535, (50, 50), np.uint16)))
    for i in range(3):
        ok, jpeg = cv2.imencode(".jpg", rng.integers(0, 255, (60, 44) + ((3,) if i else ()), np.uint8))
        made.append(_write(folder / f"good-{i}.jpg", jpeg.tobytes(), GOOD, "JPEG"))
    for i in range(4):
        made.append(_write(folder / f"good-{i}.dcm", dicom_bytes(rng.integers(0, 4095, (64, 48)).astype(np.uint16)),
                           GOOD, "DICOM"))
    pixels = rng.integers(0, 4095, (40, 40)).astype(np.uint16)
    made.append(_write(folder / "good-rle.dcm", dicom_bytes(pixels, syntax=RLELossless), GOOD, "RLE DICOM"))
    made.append(_write(folder / "good-deflate.dcm", dicom_bytes(pixels, syntax=DeflatedExplicitVRLittleEndian),
                       GOOD, "deflated DICOM"))
    made.append(_write(folder / "good-jpeg.dcm", jpeg_dicom_bytes(rng.integers(0, 255, (48, 48), np.uint8)),
                       GOOD, "JPEG baseline DICOM"))
    sub = folder / "sub"
    sub.mkdir(exist_ok=True)
    made.append(_png(sub / "good-nested.png", rng.integers(0, 255, (32, 32), np.uint8)))
    made.append(_png(_odd_name(folder, b"good-\xff\xfe-latin\xe9.png"), rng.integers(0, 255, (30, 30), np.uint8)))
    return made


def _png(path: Path, pixels: np.ndarray) -> InputFile:
    ok, encoded = cv2.imencode(".png", pixels)
    return _write(path, encoded.tobytes(), GOOD, "PNG")


# ---- DICOM -------------------------------------------------------------------------------------------
def dicom_dataset(pixels: np.ndarray, syntax=ExplicitVRLittleEndian, **attributes) -> FileDataset:
    """tests.dicom_factory's data set with a patient name and ID the logs must never show, in `syntax`;
    `attributes` are set last, after any compression (so they can lie about the pixels)."""
    ds = factory_dataset(pixels, Modality="US", PatientName="DOE^JANE", PatientID="PID-4711")
    if syntax == RLELossless:
        ds.compress(RLELossless)
    elif syntax != ExplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = syntax
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def dicom_bytes(pixels: np.ndarray, syntax=ExplicitVRLittleEndian, **attributes) -> bytes:
    from io import BytesIO

    buffer = BytesIO()
    dicom_dataset(pixels, syntax, **attributes).save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def jpeg_dicom_bytes(pixels: np.ndarray, jpeg: bytes | None = None, **attributes) -> bytes:
    """8-bit grey pixels as JPEG baseline DICOM; `jpeg` replaces the encoded stream (to make it lie)."""
    from io import BytesIO

    ds = dicom_dataset(pixels)
    if jpeg is None:
        jpeg = cv2.imencode(".jpg", pixels)[1].tobytes()
    ds.PixelData = encapsulate([jpeg])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _broken_dicoms(folder: Path, rng: np.random.Generator) -> list[InputFile]:
    pixels = rng.integers(0, 4095, (32, 32)).astype(np.uint16)
    good = dicom_bytes(pixels)
    made = []
    columns = b"\x28\x00\x11\x00US\x02\x00"  # (0028,0011) Columns, US, length 2
    at = good.index(columns)
    made.append(_write(folder / "odd-length-us.dcm", good[:at] + b"\x28\x00\x11\x00US\x03\x00\x20\x00\x00"
                       + good[at + 10:], BAD, "US value of 3 bytes"))
    made.append(_write(folder / "unknown-vr.dcm", good[:at] + b"\x28\x00\x11\x00ZZ" + good[at + 6:], BAD,
                       "unknown VR"))
    made.append(_write(folder / "bits-stored-twice.dcm", dicom_bytes(pixels, BitsStored=[12, 12]), BAD,
                       "multi-valued BitsStored"))
    made.append(_write(folder / "deflate-garbage.dcm", _with_body(good, DeflatedExplicitVRLittleEndian,
                                                                  rng.bytes(3000)), BAD, "deflate of garbage"))
    made.append(_write(folder / "sop-class-as-syntax.dcm", _with_syntax(good, SecondaryCaptureImageStorage), BAD,
                       "transfer syntax is not one"))
    made.append(_write(folder / "palette-without-lut.dcm",
                       dicom_bytes(pixels.astype(np.uint8), PhotometricInterpretation="PALETTE COLOR"), BAD,
                       "palette colour without a table"))
    made.append(_write(folder / "frames-lie-uncompressed.dcm", dicom_bytes(pixels, NumberOfFrames=5), BAD,
                       "NumberOfFrames 5, one frame stored"))
    rle = dicom_dataset(pixels, RLELossless, NumberOfFrames=4)
    made.append(_write(folder / "frames-lie-rle.dcm", _saved(rle), BAD, "RLE, NumberOfFrames 4, one frame"))
    made.append(_write(folder / "no-pixels.dcm", _without_pixels(good), BAD, "no Pixel Data"))
    return made


def _huge_declared_sizes(folder: Path, rng: np.random.Generator) -> list[InputFile]:
    small = rng.integers(0, 255, (32, 32), np.uint8)
    made = []
    for side in (30000, 60000):
        made.append(_write(folder / f"huge-{side}.png", _png_declaring(small, side, side), BAD, f"PNG {side}^2"))
        made.append(_write(folder / f"huge-{side}.jpg", _jpeg_declaring(small, side, side), BAD, f"JPEG {side}^2"))
        made.append(_write(folder / f"huge-jpeg-{side}.dcm", jpeg_dicom_bytes(small, Rows=side, Columns=side), BAD,
                           f"JPEG DICOM declaring {side}^2"))
        made.append(_write(folder / f"huge-inner-jpeg-{side}.dcm",
                           jpeg_dicom_bytes(small, jpeg=_jpeg_declaring(small, side, side)), BAD,
                           f"32^2 JPEG DICOM whose JPEG stream declares {side}^2"))
        rle = dicom_dataset(small.astype(np.uint16), RLELossless, Rows=side, Columns=side)
        made.append(_write(folder / f"huge-rle-{side}.dcm", _saved(rle), BAD, f"RLE declaring {side}^2"))
        made.append(_write(folder / f"huge-raw-{side}.dcm", dicom_bytes(small, Rows=side, Columns=side), BAD,
                           f"uncompressed declaring {side}^2"))
    made.append(_write(folder / "million-frames.dcm", dicom_bytes(small, NumberOfFrames=1_000_000), BAD,
                       "NumberOfFrames 10^6"))
    return made


def _odd_entries(folder: Path, rng: np.random.Generator) -> list[InputFile]:
    made = [_write(folder / f"empty-{i}{ext}", b"", BAD, "empty file") for i, ext in enumerate((".dcm", ".png", ""))]
    made.append(_write(folder / "notes.txt", b"not an image\n", BAD, "text"))
    made.append(_write(_odd_name(folder, b"bad-\xe9\xff.dcm"), rng.bytes(300), BAD, "random bytes, non-UTF-8 name"))
    made.append(_write(folder / "half.png", _png_bytes(rng.integers(0, 255, (40, 40), np.uint8))[:200], BAD,
                       "truncated PNG"))
    pipe = folder / "named-pipe"
    os.mkfifo(pipe)
    made.append(InputFile(pipe, BAD, "named pipe"))
    (folder / "loop-a").symlink_to("loop-b")
    (folder / "loop-b").symlink_to("loop-a")
    made += [InputFile(folder / "loop-a", BAD, "symlink loop"), InputFile(folder / "loop-b", BAD, "symlink loop")]
    (folder / "dangling").symlink_to("nowhere-at-all")
    made.append(InputFile(folder / "dangling", BAD, "dangling symlink"))
    (folder / "sub" / "up").symlink_to("..", target_is_directory=True)  # a folder loop: followed once at most
    made.append(_unix_socket(folder))
    return [m for m in made if m is not None]


# ---- byte-level helpers ------------------------------------------------------------------------------
def _write(path: Path, data: bytes, expect: str, kind: str) -> InputFile:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    return InputFile(path, expect, kind)


def _odd_name(folder: Path, name: bytes) -> Path:
    """A path whose last part is not valid UTF-8 (as Python holds it: surrogate escapes)."""
    return Path(os.fsdecode(os.fsencode(folder) + b"/" + name))


def _saved(ds: FileDataset) -> bytes:
    from io import BytesIO

    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _meta_end(data: bytes) -> int:
    """Offset after the file meta group (its length is the first element after DICM)."""
    length = struct.unpack("<I", data[140:144])[0]
    return 144 + length


def _with_syntax(data: bytes, uid: str) -> bytes:
    old = ExplicitVRLittleEndian.encode() + b"\0"
    new = uid.encode() + (b"\0" if len(uid) % 2 else b"")
    meta, body = data[:_meta_end(data)], data[_meta_end(data):]
    element = b"\x02\x00\x10\x00UI" + struct.pack("<H", len(old))
    start = meta.index(element)
    meta = meta[:start] + b"\x02\x00\x10\x00UI" + struct.pack("<H", len(new)) + new + meta[start + 8 + len(old):]
    return meta[:140] + struct.pack("<I", len(meta) - 144) + meta[144:] + body


def _with_body(data: bytes, syntax: str, body: bytes) -> bytes:
    patched = _with_syntax(data, syntax)
    return patched[:_meta_end(patched)] + body


def _without_pixels(data: bytes) -> bytes:
    return data[:data.index(b"\xe0\x7f\x10\x00")]


def _png_bytes(pixels: np.ndarray) -> bytes:
    return cv2.imencode(".png", pixels)[1].tobytes()


def _png_declaring(pixels: np.ndarray, width: int, height: int) -> bytes:
    """A valid small PNG whose IHDR (with a correct CRC) declares width x height."""
    data = bytearray(_png_bytes(pixels))
    ihdr = bytearray(data[12:29])  # type + 13 bytes of data
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return bytes(data)


def _jpeg_declaring(pixels: np.ndarray, width: int, height: int) -> bytes:
    """A valid small JPEG whose SOF marker declares width x height."""
    data = bytearray(cv2.imencode(".jpg", pixels)[1].tobytes())
    at = data.index(b"\xff\xc0")
    data[at + 5:at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _unix_socket(folder: Path) -> InputFile | None:
    path = folder / "socket"
    if len(os.fsencode(path)) >= 100:  # AF_UNIX paths are short
        return None
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()
    return InputFile(path, BAD, "unix socket")


def slowest_file(folder: Path) -> tuple[float, str, float, str]:
    """(seconds, name) of the slowest header read in a scan of `folder`, then of the slowest decode."""
    import time

    from app.io.study_loader import decode_series, iter_scan

    steps, read, started = iter_scan([folder]), (0.0, ""), time.perf_counter()
    try:
        while True:
            _, _, name = next(steps)
            now = time.perf_counter()
            read, started = max(read, (now - started, name)), now
    except StopIteration as stop:
        result = stop.value
    decode = (0.0, "")
    for series in (s for study in result.studies for s in study.series):
        started = time.perf_counter()
        decode_series(series)
        decode = max(decode, (time.perf_counter() - started, series.first.path.name))
    return read[0], read[1], decode[0], decode[1]
