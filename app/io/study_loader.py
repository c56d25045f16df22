"""Files, folders and folder trees to studies (headers only), then a study's pixels, in parallel.

Both steps are generators: they report progress as they go and stop when closed.
A file that fails never stops the rest: it becomes a `LoadProblem` with a one-line reason.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.core.image import ImageInfo, LoadedImage
from app.core.study import Series, Study, group_into_studies
from app.io.dicom_reader import decode_dicom, is_dicom_file, read_dicom_info
from app.io.errors import LoadProblem, NotDicomError, StudyLoadError
from app.io.raster_reader import decode_raster, raster_format, read_raster_info

Progress = Callable[[int, int, str], None]  # (done, total, what)
SKIPPED_NAMES = {"DICOMDIR", "Thumbs.db", "desktop.ini"}
DECODE_WORKERS = max(1, min(4, os.cpu_count() or 1))


@dataclass
class ScanResult:
    studies: list[Study] = field(default_factory=list)
    problems: list[LoadProblem] = field(default_factory=list)


def collect_files(paths: Iterable[Path | str]) -> tuple[list[Path], list[LoadProblem]]:
    """Every file named or inside a named folder (recursively), hidden files left out."""
    files: list[Path] = []
    problems: list[LoadProblem] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                files.extend(Path(root) / n for n in sorted(names) if _wanted(n))
        elif path.is_file():
            files.append(path)
        else:
            problems.append(LoadProblem(path, "no such file or folder"))
    return files, problems


def read_info(path: Path) -> ImageInfo:
    """Header facts of one file of any supported kind; StudyLoadError otherwise."""
    try:
        if is_dicom_file(path):
            return read_dicom_info(path)
        kind = raster_format(path)
    except OSError as error:
        raise StudyLoadError(path, f"unreadable file ({error.strerror or error})") from error
    if kind is not None:
        return read_raster_info(path, kind)
    try:
        return read_dicom_info(path)  # DICOM without the 128-byte preamble and file meta
    except NotDicomError:
        raise StudyLoadError(path, "not an image (neither DICOM, PNG nor JPEG)") from None


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
