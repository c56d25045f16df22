"""Runs models off the UI thread, one study at a time, and hands results back on it.

Every result carries the identity of the image and model it was computed for; a run started for
an earlier study is cancelled and anything it still sends is dropped by its generation number.
torch (through the engine) is loaded on the first run, not when the window opens.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

from PySide6 import QtCore
from superqt.utils import GeneratorWorker, thread_worker

from app.core.cpu import usable_cores
from app.core.errors import RadLensError
from app.core.text import describe
from app.inference.manifest import ModelManifest
from app.inference.options import ExplainOptions
from app.inference.registry import ModelRegistry

if TYPE_CHECKING:
    from app.inference.runner import InferenceEngine
    from app.session import InferenceJob

log = logging.getLogger("radlens.inference")


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
def _inference_worker(engine: InferenceEngine, registry: ModelRegistry, jobs: list, preferred: ModelManifest | None,
                      options: ExplainOptions):
    """jobs: the session's InferenceJobs; each image's model is chosen by routing.choose_model (the reader's
    `preferred` model where it fits); yields one outcome per job."""
    from app.inference.routing import choose_model

    for job in jobs:
        series_identity, image, frame = job.series_identity, job.image, job.frame
        name = "choosing a model"
        try:
            with _core_left_for_ui(engine):
                route = choose_model(image, registry, lambda models: engine.guard_scores(models, image, frame),
                                     preferred=preferred)
                if route.model is None:
                    outcome = ("error", series_identity, f"{image.info.label}: {route.reason}")
                else:
                    name = route.model.name
                    result = replace(engine.run(route.model, image, frame, options), route=route.reason)
                    outcome = ("result", series_identity, result)
        except RadLensError as error:  # the model's, the package's, the device's: their own words
            outcome = ("error", series_identity, f"{name}: {error}")
        except Exception as error:  # a bug: named as one; superqt would drop it and the run would never end
            log.debug("%s failed on %s", name, image.info.label, exc_info=True)
            outcome = ("error", series_identity, f"{name} failed unexpectedly ({describe(error)}); see the log")
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

    def run(self, study_key: str, jobs: tuple[InferenceJob, ...], registry: ModelRegistry,
            preferred: ModelManifest | None, options: ExplainOptions) -> None:
        self.cancel()
        self._generation += 1
        generation, total, done = self._generation, len(jobs), [0]
        worker = _inference_worker(self.engine, registry, jobs, preferred, options)

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
