"""Runs the loaders off the UI thread (superqt workers) and hands results back on it.

Every request gets a generation number; a result from an older request is dropped, so a late
decode never lands on a study opened after it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from PySide6 import QtCore
from superqt.utils import GeneratorWorker, thread_worker

from app.core.study import Study
from app.core.text import describe, printable
from app.io.errors import LoadProblem
from app.io.study_loader import ScanResult, decode_study, iter_scan

log = logging.getLogger("radlens.ui")


@thread_worker(start_thread=False)
def _scan_worker(paths: list[Path]):
    """Always returns a ScanResult: superqt drops a RuntimeError (NotImplementedError, a StopIteration
    turned RuntimeError) without any signal, which would leave the scan unfinished forever."""
    try:
        return (yield from iter_scan(paths))
    except Exception as error:
        log.error("Reading %s stopped", printable(", ".join(map(str, paths))), exc_info=True)
        where = paths[0] if len(paths) == 1 else Path(os.path.commonpath(paths))
        return ScanResult(problems=[LoadProblem(where, f"reading stopped ({describe(error)})")])


@thread_worker(start_thread=False)
def _decode_worker(study: Study):
    """Yields (series, image, problems) for every series, a failed one too, and always finishes."""
    pending = list(study.series)
    try:
        for series, image, problems in decode_study(study):
            pending.remove(series)
            yield series, image, problems
    except Exception as error:
        log.error("Decoding %s stopped", printable(study.title), exc_info=True)
        reason = f"decoding stopped ({describe(error)})"
        for series in pending:
            yield series, None, [LoadProblem(series.first.path, reason)]


class StudyLoadController(QtCore.QObject):
    """Scans paths into studies and decodes the study being read, one request at a time."""

    scan_progress = QtCore.Signal(int, int, str)
    scan_finished = QtCore.Signal(object)  # ScanResult
    decode_progress = QtCore.Signal(int, int)
    image_ready = QtCore.Signal(str, object, object)  # study key, Series, LoadedImage
    series_failed = QtCore.Signal(str, object, object)  # study key, Series, list[LoadProblem]
    problems_found = QtCore.Signal(object)  # list[LoadProblem]
    study_decoded = QtCore.Signal(str)

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._scan_generation = 0
        self._decode_generation = 0
        self._scan: GeneratorWorker | None = None
        self._decode: GeneratorWorker | None = None

    @property
    def busy(self) -> bool:
        return self._scan is not None or self._decode is not None

    def open_paths(self, paths: Iterable[Path]) -> None:
        self.cancel()
        self._scan_generation += 1
        generation = self._scan_generation
        worker = _scan_worker(list(paths))
        worker.yielded.connect(lambda step: self._on_scan_step(generation, step))
        worker.returned.connect(lambda result: self._on_scan_done(generation, result))
        worker.finished.connect(lambda: self._clear_scan(worker))
        self._scan = worker
        worker.start()

    def decode(self, study: Study) -> None:
        self._cancel_decode()
        self._decode_generation += 1
        generation, total, done = self._decode_generation, len(study.series), [0]
        worker = _decode_worker(study)

        def on_result(item) -> None:
            if generation != self._decode_generation:
                return
            series, image, problems = item
            done[0] += 1
            self.decode_progress.emit(done[0], total)
            if problems:
                self.problems_found.emit(problems)
            if image is not None:
                self.image_ready.emit(study.key, series, image)
            else:
                self.series_failed.emit(study.key, series, problems)

        worker.yielded.connect(on_result)
        worker.finished.connect(lambda: self._on_decode_finished(worker, generation, study.key))
        self._decode = worker
        worker.start()

    def cancel(self) -> None:
        self._scan_generation += 1
        if self._scan is not None:
            self._scan.quit()
        self._cancel_decode()

    def _cancel_decode(self) -> None:
        self._decode_generation += 1
        if self._decode is not None:
            self._decode.quit()

    # ---- worker callbacks (UI thread) ------------------------------------------------------------
    def _on_scan_step(self, generation: int, step: tuple[int, int, str]) -> None:
        if generation == self._scan_generation:
            self.scan_progress.emit(*step)

    def _on_scan_done(self, generation: int, result: ScanResult) -> None:
        if generation == self._scan_generation and result is not None:
            self.scan_finished.emit(result)

    def _clear_scan(self, worker: GeneratorWorker) -> None:
        if self._scan is worker:
            self._scan = None

    def _on_decode_finished(self, worker: GeneratorWorker, generation: int, key: str) -> None:
        if self._decode is worker:
            self._decode = None
        if generation == self._decode_generation:
            self.study_decoded.emit(key)
