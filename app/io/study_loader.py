"""Files, folders and folder trees to studies (headers only), then a study's pixels, in parallel.

Both steps are generators: they report progress as they go and stop when closed.
A file that fails never stops the rest: it becomes a `LoadProblem` with a one-line reason.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import JPEG2000TransferSyntaxes, JPEGLSTransferSyntaxes, JPEGTransferSyntaxes

from app.core.image import ImageInfo, LoadedImage
from app.core.study import Series, Study, group_into_studies
from app.core.text import describe, printable
from app.io.dicom_reader import decode_dicom, is_dicom_file, read_dicom_info
from app.io.errors import LoadProblem, NotDicomError, StudyLoadError
from app.io.image_size import check_pixel_budget, first_frame_size
from app.io.raster_reader import decode_raster, raster_format, read_raster_info

Progress = Callable[[int, int, str], None]  # (done, total, what)
SKIPPED_NAMES = {"DICOMDIR", "Thumbs.db", "desktop.ini"}
DECODE_WORKERS = max(1, min(4, os.cpu_count() or 1))
FILE_KINDS = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"),
              (stat.S_ISSOCK, "a socket"))
ENCAPSULATED_SYNTAXES_WITH_SIZE = {str(uid) for uid in (*JPEGTransferSyntaxes, *JPEGLSTransferSyntaxes,
                                                        *JPEG2000TransferSyntaxes)}
log = logging.getLogger("radlens.io")
# A damaged value is this file's problem, reported once as its reason; pydicom's warning about it would
# quote the value (it may be a patient's name) into the log, once for every value of every file.
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE


@dataclass
class ScanResult:
    studies: list[Study] = field(default_factory=list)
    problems: list[LoadProblem] = field(default_factory=list)


def collect_files(paths: Iterable[Path | str]) -> tuple[list[Path], list[LoadProblem]]:
    """Every regular file named or inside a named folder (recursively, through symbolic links, each
    folder once), hidden files left out; pipes, devices, sockets and broken links are listed as skipped."""
    files: list[Path] = []
    problems: list[LoadProblem] = []
    seen_folders: set[tuple[int, int]] = set()
    for raw in paths:
        path = Path(raw).expanduser()
        if not os.path.lexists(path):
            problems.append(LoadProblem(path, "no such file or folder"))
        elif path.is_dir():
            for root, dirs, names in os.walk(path, followlinks=True):
                if not _first_visit(Path(root), seen_folders):
                    dirs[:] = []
                    continue
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    if _wanted(name):
                        _add_if_regular(Path(root) / name, files, problems)
        else:
            _add_if_regular(path, files, problems)
    return files, problems


def _first_visit(folder: Path, seen: set[tuple[int, int]]) -> bool:
    try:
        status = folder.stat()
    except OSError:
        return False
    key = (status.st_dev, status.st_ino)
    if key in seen:
        return False
    seen.add(key)
    return True


def _add_if_regular(path: Path, files: list[Path], problems: list[LoadProblem]) -> None:
    """Only regular files are ever opened: a named pipe would block the scan forever."""
    try:
        mode = path.stat().st_mode
    except OSError:
        problems.append(LoadProblem(path, "skipped: a symbolic link that loops or leads nowhere"
                                    if path.is_symlink() else "skipped: it cannot be read"))
        return
    if stat.S_ISREG(mode):
        files.append(path)
    elif not stat.S_ISDIR(mode):
        kind = next((what for test, what in FILE_KINDS if test(mode)), "not a regular file")
        problems.append(LoadProblem(path, f"skipped: {kind}, not a file"))


def read_info(path: Path) -> ImageInfo:
    """Header facts of one file of any supported kind; StudyLoadError otherwise, whatever went wrong."""
    try:
        return _read_info(path)
    except StudyLoadError:
        raise
    except OSError as error:
        raise StudyLoadError(path, f"unreadable file ({error.strerror or error})") from error
    except Exception as error:  # a reader's bug must cost this file only
        log.debug("Unexpected error reading %s", printable(str(path)), exc_info=True)
        raise StudyLoadError(path, f"could not be read ({error.__class__.__name__})") from error


def _read_info(path: Path) -> ImageInfo:
    if is_dicom_file(path):
        return _with_first_frame_checked(read_dicom_info(path))
    kind = raster_format(path)
    if kind is not None:
        return read_raster_info(path, kind)
    try:
        return _with_first_frame_checked(read_dicom_info(path))  # DICOM without the preamble and file meta
    except NotDicomError:
        raise StudyLoadError(path, "not an image (neither DICOM, PNG nor JPEG)") from None


def _with_first_frame_checked(info: ImageInfo) -> ImageInfo:
    """A compressed frame may declare another size than the DICOM header: its own is held to the budget too."""
    if info.transfer_syntax in ENCAPSULATED_SYNTAXES_WITH_SIZE:
        size = first_frame_size(info.path)
        if size is not None:
            check_pixel_budget(info.path, size[0], size[1], info.frames, size[2], source="its first compressed frame")
    return info


def iter_scan(paths: Iterable[Path | str]) -> Generator[tuple[int, int, str], None, ScanResult]:
    """Read every file's header, yielding (done, total, file name); returns the studies found.

    Closing the generator cancels the scan.
    """
    files, problems = collect_files(paths)
    infos: list[ImageInfo] = []
    for done, path in enumerate(files, start=1):
        try:
            infos.append(read_info(path))
        except StudyLoadError as error:
            problems.append(LoadProblem.from_error(error))
        yield done, len(files), path.name
    return ScanResult(group_into_studies(infos), problems)


def scan(paths: Iterable[Path | str], on_progress: Progress | None = None) -> ScanResult:
    steps = iter_scan(paths)
    while True:
        try:
            step = next(steps)
        except StopIteration as stop:
            return stop.value
        if on_progress:
            on_progress(*step)


def decode_image(info: ImageInfo) -> LoadedImage:
    if info.source_format == "dicom":
        return decode_dicom(info)
    return decode_raster(info)


def decode_series(series: Series) -> tuple[LoadedImage | None, list[LoadProblem]]:
    """One image, or the slices of a stack as frames of one image (slices that fail are listed)."""
    loaded: list[LoadedImage] = []
    problems: list[LoadProblem] = []
    for info in series.images:
        try:
            loaded.append(decode_image(info))
        except StudyLoadError as error:
            problems.append(LoadProblem.from_error(error))
        except MemoryError:
            problems.append(LoadProblem(info.path, "not enough memory to decode this image"))
        except Exception as error:  # a decoder's surprise (StopIteration, ValueError, ...) costs this file only
            log.debug("Unexpected error decoding %s", printable(str(info.path)), exc_info=True)
            problems.append(LoadProblem(info.path, f"pixel data could not be decoded ({describe(error)})"))
    if not loaded:
        return None, problems
    if len(loaded) == 1:
        return loaded[0], problems
    shape = loaded[0].frames.shape[1:]
    same = [img for img in loaded if img.frames.shape[1:] == shape]
    problems += [LoadProblem(img.info.path, "slice size differs from its series") for img in loaded if img not in same]
    frames = np.concatenate([img.frames for img in same])
    lows, highs = zip(*(img.stored_range for img in same))
    return LoadedImage(info=same[0].info, frames=frames, stored_range=(min(lows), max(highs))), problems


def decode_study(study: Study, workers: int = DECODE_WORKERS
                 ) -> Iterator[tuple[Series, LoadedImage | None, list[LoadProblem]]]:
    """Decode every series of a study on `workers` threads, yielding each as soon as it is ready.

    Closing the generator cancels what has not started.
    """
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")
    pending: dict[Future, Series] = {pool.submit(decode_series, s): s for s in study.series}
    try:
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                series = pending.pop(future)
                image, problems = future.result()
                yield series, image, problems
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _wanted(name: str) -> bool:
    return not name.startswith(".") and name not in SKIPPED_NAMES
