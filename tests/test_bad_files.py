"""One bad file never costs the good ones: header errors, pixel budget, odd file kinds, odd names."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from app.io.errors import StudyLoadError
from app.io.limits import PIXEL_BUDGET
from app.io.study_loader import collect_files, decode_image, decode_series, read_info, scan
from tests import bad_inputs
from tests.bad_inputs import dicom_bytes, jpeg_dicom_bytes

ROOT = Path(__file__).resolve().parents[1]
PIXELS = np.random.default_rng(0).integers(0, 4095, (32, 32)).astype(np.uint16)
SMALL = PIXELS.astype(np.uint8)


def broken(tmp_path, name: str) -> Path:
    """One file of the bad-input generator's broken DICOMs, by name."""
    made = {m.path.name: m.path for m in bad_inputs._broken_dicoms(tmp_path, np.random.default_rng(0))}
    return made[name]


@pytest.mark.parametrize("name, error", [
    ("odd-length-us.dcm", "BytesLengthException"),
    ("unknown-vr.dcm", "NotImplementedError"),
    ("bits-stored-twice.dcm", "TypeError"),
    ("deflate-garbage.dcm", "error"),  # zlib.error
])
def test_any_header_error_is_one_problem_named_with_its_path(tmp_path, name, error):
    path = broken(tmp_path, name)
    with pytest.raises(StudyLoadError, match=f"unreadable DICOM header \\({error}: ") as caught:
        read_info(path)
    assert caught.value.path == path and "\n" not in caught.value.reason


@pytest.mark.parametrize("name", ["sop-class-as-syntax.dcm", "palette-without-lut.dcm", "frames-lie-rle.dcm"])
def test_any_decode_error_is_one_problem_for_that_file(tmp_path, name):
    path = broken(tmp_path, name)
    try:
        info = read_info(path)
    except StudyLoadError as error:  # refusing it from the header is as good
        assert error.path == path
        return
    from app.core.study import group_into_studies

    series = group_into_studies([info])[0].series[0]
    image, problems = decode_series(series)
    assert image is None and [p.path for p in problems] == [path] and problems[0].reason


def test_a_scan_lists_every_broken_file_and_keeps_the_good_one(tmp_path):
    made = bad_inputs._broken_dicoms(tmp_path, np.random.default_rng(0))
    (tmp_path / "good.dcm").write_bytes(dicom_bytes(PIXELS))
    result = scan([tmp_path])
    assert [s.images[0].path.name for s in result.studies if s.images[0].path.name == "good.dcm"] == ["good.dcm"]
    opened = {i.path for s in result.studies for i in s.images}
    assert {m.path for m in made} <= opened | {p.path for p in result.problems}


# ---- pixel budget --------------------------------------------------------------------------------
@pytest.mark.parametrize("side", [30000, 60000])
def test_png_and_jpeg_declaring_more_than_the_budget_are_refused_from_their_header(tmp_path, side):
    for name, data in [("big.png", bad_inputs._png_declaring(SMALL, side, side)),
                       ("big.jpg", bad_inputs._jpeg_declaring(SMALL, side, side))]:
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(StudyLoadError, match=f"{side} x {side}.*pixel budget"):
            read_info(path)


@pytest.mark.parametrize("make", [
    lambda side: jpeg_dicom_bytes(SMALL, Rows=side, Columns=side),
    lambda side: jpeg_dicom_bytes(SMALL, jpeg=bad_inputs._jpeg_declaring(SMALL, side, side)),
    lambda side: bad_inputs._saved(bad_inputs.dicom_dataset(PIXELS, bad_inputs.RLELossless, Rows=side, Columns=side)),
    lambda side: dicom_bytes(SMALL, NumberOfFrames=side * 20),
], ids=["jpeg-dicom", "jpeg-stream-inside", "rle", "frames"])
def test_dicom_declaring_more_than_the_budget_is_refused_before_decoding(tmp_path, make):
    path = tmp_path / "big.dcm"
    path.write_bytes(make(60000))
    with pytest.raises(StudyLoadError, match="pixel budget"):
        read_info(path)


def test_an_image_within_the_budget_still_opens(tmp_path):
    path = tmp_path / "ok.dcm"
    path.write_bytes(dicom_bytes(PIXELS, NumberOfFrames=1))
    assert decode_image(read_info(path)).frames.shape == (1, 32, 32)
    assert PIXEL_BUDGET >= 2e8


def test_opencv_errors_become_load_errors(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "small.png"
    path.write_bytes(bad_inputs._png_bytes(SMALL))
    code = ("import sys; from pathlib import Path; from app.io.errors import StudyLoadError; "
            "from app.io.study_loader import decode_image, read_info\n"
            "try: decode_image(read_info(Path(sys.argv[1])))\n"
            "except StudyLoadError as error: print('refused:', error.reason)")
    env = {**os.environ, "OPENCV_IO_MAX_IMAGE_PIXELS": "100"}  # OpenCV's own limit, below this image
    done = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stdout.startswith("refused: OpenCV could not decode it")


# ---- what is read at all -------------------------------------------------------------------------
def test_a_named_pipe_is_skipped_with_a_reason_and_never_opened(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "good.dcm").write_bytes(dicom_bytes(PIXELS))
    done = []
    worker = threading.Thread(target=lambda: done.append(scan([tmp_path])), daemon=True)
    worker.start()
    worker.join(10)
    assert done, "the scan blocked on the named pipe"
    assert [(p.path.name, p.reason) for p in done[0].problems] == [("pipe", "skipped: a named pipe, not a file")]
    assert len(done[0].studies) == 1


def test_devices_are_skipped_when_named(tmp_path):
    files, problems = collect_files([Path("/dev/null")])
    assert files == [] and problems[0].reason == "skipped: a device, not a file"


def test_symlinks_are_followed_without_looping(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "good.dcm").write_bytes(dicom_bytes(PIXELS))
    (tmp_path / "a" / "up").symlink_to("..", target_is_directory=True)
    (tmp_path / "a" / "again").symlink_to(".", target_is_directory=True)
    (tmp_path / "loop-1").symlink_to("loop-2")
    (tmp_path / "loop-2").symlink_to("loop-1")
    (tmp_path / "elsewhere").symlink_to(tmp_path / "a" / "good.dcm")
    files, problems = collect_files([tmp_path])
    assert sorted(f.name for f in files) == ["elsewhere", "good.dcm"]
    assert sorted((p.path.name, p.reason) for p in problems) == [
        ("loop-1", "skipped: a symbolic link that loops or leads nowhere"),
        ("loop-2", "skipped: a symbolic link that loops or leads nowhere")]


def test_a_file_named_with_invalid_utf8_opens_and_its_name_prints_escaped(tmp_path):
    from app.core.text import printable

    path = bad_inputs._odd_name(tmp_path, b"scan-\xff.dcm")
    path.write_bytes(dicom_bytes(PIXELS))
    result = scan([tmp_path])
    info = result.studies[0].images[0]
    assert decode_image(info).frames.shape == (1, 32, 32)
    assert printable(info.path.name) == "scan-\\xff.dcm" and info.label == "scan-\\xff.dcm"
    printable(str(info.path)).encode("utf-8")


def test_two_files_sharing_one_sop_instance_uid_are_two_images(tmp_path):
    from pydicom.uid import generate_uid

    uid, study = generate_uid(), generate_uid()
    for name, value in (("a.dcm", 100), ("b.dcm", 200)):
        (tmp_path / name).write_bytes(dicom_bytes(np.full((16, 16), value, np.uint16), SOPInstanceUID=uid,
                                                  StudyInstanceUID=study))
    (tmp_path / "link.dcm").symlink_to(tmp_path / "a.dcm")
    infos = {p.name: read_info(p) for p in sorted(tmp_path.iterdir())}
    assert infos["a.dcm"].identity != infos["b.dcm"].identity
    assert infos["a.dcm"].identity == infos["link.dcm"].identity  # the same file is the same image
    (study_found,) = scan([tmp_path / "a.dcm", tmp_path / "b.dcm"]).studies
    assert len({s.identity for s in study_found.series}) == 2


def test_a_modality_whose_length_swallows_the_patients_name_never_reaches_a_reason_or_the_screen(tmp_path):
    """A damaged length makes Modality take the elements after it; that value is not a code string."""
    data = dicom_bytes(np.zeros((8, 8), np.uint16))
    element = b"\x08\x00\x60\x00CS\x02\x00US"  # (0008,0060) Modality, CS, 2 bytes
    assert data.count(element) == 1
    (tmp_path / "swallowed.dcm").write_bytes(data.replace(element, b"\x08\x00\x60\x00CS\x80\x00US"))
    result = scan([tmp_path])
    shown = [p.reason for p in result.problems] + [
        text for study in result.studies for info in study.images for text in (study.title, info.modality, info.label)]
    assert shown and not any("DOE^JANE" in text or "PID-4711" in text for text in shown)
