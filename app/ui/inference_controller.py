"""Runs models off the UI thread, one study at a time, and hands results back on it.

Every result carries the identity of the image and model it was computed for; a run started for
an earlier study is cancelled and anything it still sends is dropped by its generation number.
torch (through the engine) is loaded on the first run, not when the window opens.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

from PySide6 import QtCore
from superqt.utils import GeneratorWorker, thread_worker

from app.core.cpu import usable_cores
from app.core.text import describe
from app.inference.manifest import ModelManifest, ModelPackageError
from app.inference.options import ExplainOptions

if TYPE_CHECKING:
    from app.inference.runner import InferenceEngine


@contextmanager
def _core_left_for_ui(engine: InferenceEngine):
    """On the CPU, torch's intra-op threads use every core and starve the UI thread (measured by
    benchmarks/ui_stall.py); use one thread fewer than there are cores while the run lasts."""
    import torch

    from app.inference.device import choose_device

    try:
        on_cpu = choose_device(engine.device_preference).type == "cpu"
    except ValueError:
        on_cpu = False  # the engine reports the bad choice per image
    cores = usable_cores()
    before = torch.get_num_threads()
    if on_cpu and before >= cores > 1:
        torch.set_num_threads(cores - 1)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@thread_worker(start_thread=False)
def _inference_worker(engine: InferenceEngine, jobs: list, options: ExplainOptions):
    """jobs: (series identity, LoadedImage, frame, ModelManifest); yields one outcome per job."""
    from app.inference.runner import InferenceError

    for series_identity, image, frame, manifest in jobs:
        try:
            with _core_left_for_ui(engine):
                outcome = ("result", series_identity, engine.run(manifest, image, frame, options))
        except (InferenceError, ModelPackageError, ValueError) as error:
            outcome = ("error", series_identity, f"{manifest.name}: {error}")
        except Exception as error:  # superqt would drop a RuntimeError silently and the run would never end
            outcome = ("error", series_identity, f"{manifest.name}: {describe(error)}")
        yield outcome


class InferenceController(QtCore.QObject):
    result_ready = QtCore.Signal(str, str, object)  # study key, series identity, InferenceResult
    failed = QtCore.Signal(str, str, str)  # study key, series identity ("" for the whole run), message
    progress = QtCore.Signal(int, int)
    finished = QtCore.Signal(str)

    def __init__(self, device: str = "auto", parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.device = device
        self._engine: InferenceEngine | None = None
        self._generation = 0
        self._worker: GeneratorWorker | None = None

    @property
    def engine(self) -> InferenceEngine:
        """Made on first use: importing the engine loads torch (seconds)."""
        if self._engine is None or self._engine.device_preference != self.device:
            from app.inference.runner import InferenceEngine

            self._engine = InferenceEngine(self.device)
        return self._engine

    @property
    def busy(self) -> bool:
        return self._worker is not None

    def set_device(self, device: str) -> None:
        self.cancel()
        self.device = device

    def run(self, study_key: str, jobs: list[tuple[str, object, int, ModelManifest]],
            options: ExplainOptions) -> None:
        self.cancel()
        self._generation += 1
        generation, total, done = self._generation, len(jobs), [0]
        worker = _inference_worker(self.engine, jobs, options)

        def on_outcome(outcome) -> None:
            if generation != self._generation:
                return
            kind, series_identity, payload = outcome
            done[0] += 1
            self.progress.emit(done[0], total)
            if kind == "result":
                self.result_ready.emit(study_key, series_identity, payload)
            else:
                self.failed.emit(study_key, series_identity, payload)

        def on_error(error: Exception) -> None:
            if generation == self._generation:
                self.failed.emit(study_key, "", f"{type(error).__name__}: {error}")

        def on_finished() -> None:
            if self._worker is worker:
                self._worker = None
            if generation == self._generation:
                self.finished.emit(study_key)

        worker.yielded.connect(on_outcome)
        worker.errored.connect(on_error)
        worker.finished.connect(on_finished)
        self._worker = worker
        self.progress.emit(0, total)
        worker.start()

    def cancel(self) -> None:
        self._generation += 1
        if self._worker is not None:
            self._worker.quit()
