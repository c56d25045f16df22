"""`radlens predict`: every image in a folder through a model, to predictions.csv, masks and pictures."""

from __future__ import annotations

import csv
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from app.commands.journal import ImageRecord, Journal, series_stamp
from app.core.errors import RadLensError
from app.core.image import LoadedImage
from app.core.progress import ProgressReport
from app.core.study import Series
from app.core.text import describe, printable
from app.export.results_bundle import BundleWriter, ImageResult
from app.inference.glam.exam_list import read_exam_labels
from app.inference.manifest import ModelManifest
from app.inference.registry import ModelRegistry
from app.inference.routing import choose_model
from app.inference.results import InferenceResult
from app.inference.runner import InferenceEngine
from app.inference.tasks import TASKS
from app.io.errors import LoadProblem
from app.io.study_loader import ScanResult, decode_series, scan


log = logging.getLogger("radlens.predict")


@dataclass
class BatchReport:
    predicted: int = 0
    problems: list[LoadProblem] = field(default_factory=list)
    resumed: int = 0  # images whose results an earlier, stopped run of this OUTPUT had written
    started_afresh: bool = False  # the OUTPUT's journal was written with other settings and was set aside
    images: int = 0  # images (series) found
    seconds: float = 0.0

    def summary(self) -> str:
        """e.g. '390 image(s) predicted of 394 (120 by an earlier run), 4 not predicted, 2.91 images/s over 1:32'."""
        done_now = self.images - self.resumed
        rate = (f", {done_now / self.seconds:.2f} images/s over {_interval(self.seconds)}"
                if done_now and self.seconds else "")
        resumed = f" ({self.resumed} by an earlier run)" if self.resumed else ""
        return (f"{self.predicted} image(s) predicted of {self.images}{resumed}, "
                f"{self.images - self.predicted} not predicted{rate}")


@dataclass(frozen=True)
class PredictJob:
    """What every image of a run is read with, and where its outputs go: what an engine's workers need."""

    source: Path
    out: Path
    registry: ModelRegistry
    chosen: ModelManifest | None
    visualizations: bool
    exam_labels: dict[str, tuple[int, int]]


@dataclass
class RunPlan:
    """A run over the images found (in predictions.csv's order): those still to do, and the journal."""

    job: PredictJob
    series: list[Series]
    keys: list[str]
    todo: list[tuple[str, Series]]
    journal: Journal
    scan_problems: list[LoadProblem]
    keep_earlier: bool = False  # predictions.csv keeps the journal's rows of images not scanned this time
    started: float = field(default_factory=time.monotonic)


def predict_folder(source: Path, out: Path, *, model_name: str | None = None, device: str = "auto",
                   visualizations: bool = True, registry: ModelRegistry | None = None,
                   show_progress: bool = False, exam_list: Path | None = None,
                   bundle: BundleWriter | None = None, within: list[Path] | None = None,
                   keep_earlier: bool = False) -> BatchReport:
    """Run a model on every readable image under `source`: `model_name` when given, else the one
    routing.choose_model picks per image; unreadable images, and those no model fits, are listed, not fatal.
    The local engine: one process, images one after another. A stopped run resumes (journal.py).

    Each row's columns after `image` and `model` are its task's (tasks/). When every prediction comes from
    one task with columns of its own (GLAM: image_index, benign_pred, malignant_pred, and the labels when
    `exam_list` gives them), predictions.csv has those instead.
    `bundle`: each result also goes into it (DICOM SEG now, findings SR at its finish), for a PACS; such a
    run reads every image again (the bundle needs every result, not a journal line).
    `within`: read only these folders under `source` (names stay relative to `source`); `keep_earlier`:
    predictions.csv keeps the rows earlier runs into `out` wrote for other images (PACS batches)."""
    plan = plan_run(source, out, scan(within or [source]), model_name=model_name, registry=registry,
                    visualizations=visualizations, exam_list=exam_list, resume=bundle is None,
                    keep_earlier=keep_earlier)
    engine = InferenceEngine(device)
    with run_progress(plan, show_progress) as progress:
        for key, item in plan.todo:
            image, problems = decode_series(item)
            record = predict_decoded(engine, plan.job, key, item, image, problems, bundle)
            plan.journal.add(record)
            progress(record)
    return finish_run(plan)


def plan_run(source: Path, out: Path, scanned: ScanResult, *, model_name: str | None, registry: ModelRegistry | None,
             visualizations: bool, exam_list: Path | None, resume: bool = True, keep_earlier: bool = False) -> RunPlan:
    """The images of `scanned` in predictions.csv's order, those an earlier run of `out` did not finish,
    and the journal that records them (both engines start here)."""
    exam_labels = read_exam_labels(exam_list) if exam_list else {}
    registry = registry or ModelRegistry.discover()
    chosen = registry.get(model_name) if model_name else None
    series = [s for study in scanned.studies for s in study.series]
    out.mkdir(parents=True, exist_ok=True)
    settings = {"model": model_name, "visualizations": visualizations,
                "exam_list": sorted((k, list(v)) for k, v in exam_labels.items()),
                "models": sorted([m.key, m.weights_sha256, m.ood.get("sha256", "")] for m in registry.models)}
    journal = Journal(out, settings, resume=resume)
    keys = [_relative(item.first.path, source) for item in series]
    todo = [(key, item) for key, item in zip(keys, series) if journal.finished(key, series_stamp(item)) is None]
    job = PredictJob(source, out, registry, chosen, visualizations, exam_labels)
    return RunPlan(job, series, keys, todo, journal, list(scanned.problems), keep_earlier)


def predict_decoded(engine: InferenceEngine, job: PredictJob, key: str, item: Series, image: LoadedImage | None,
                    problems: list[LoadProblem], bundle: BundleWriter | None = None) -> ImageRecord:
    """One decoded image through its model: its task's files and picture written, its rows and problems
    returned. The one per-image path of both engines."""
    report = BatchReport(problems=list(problems))
    row = own = task = None
    if image is not None:
        path = item.first.path
        model, outcome = _read(engine, job.registry, image, job.chosen, path, report)
        if outcome is not None:
            task = outcome.task
            row = {"image": key, "model": model.name, **TASKS[task].csv_row(outcome)}
            own = TASKS[task].own_table([(path, outcome)], job.exam_labels)
            _write_outputs(job.out, key, image, outcome, job.visualizations)
            if bundle is not None:
                bundle.add(ImageResult(path, outcome, is_dicom=image.info.source_format == "dicom"))
    return ImageRecord(key, series_stamp(item), row, task, own and (list(own[0]), own[1][0]),
                       tuple((str(p.path), p.reason) for p in report.problems))


def finish_run(plan: RunPlan) -> BatchReport:
    """predictions.csv from the journal, in the images' order (a task's own table when every row is that
    task's: Task.own_table, asked one image at a time)."""
    plan.journal.close()
    records = [plan.journal.records[key] for key in plan.keys if key in plan.journal.records]
    earlier = [r for key, r in plan.journal.records.items() if key not in set(plan.keys)] if plan.keep_earlier else []
    records += earlier
    report = BatchReport(problems=list(plan.scan_problems), images=len(plan.series) + len(earlier),
                         resumed=len(plan.series) - len(plan.todo) + len(earlier),
                         started_afresh=plan.journal.started_afresh, seconds=time.monotonic() - plan.started)
    predicted = [r for r in records if r.row is not None]
    report.predicted = len(predicted)
    report.problems += [LoadProblem(Path(path), reason) for r in records for path, reason in r.problems]
    columns: list[str] = ["image", "model"]
    rows = [r.row for r in predicted]
    for row in rows:
        columns += [c for c in row if c not in columns]
    if predicted and len({r.task for r in predicted}) == 1 and predicted[0].own is not None:
        columns, rows = predicted[0].own[0], [r.own[1] for r in predicted]  # the task's own table, row by row
    with open(plan.job.out / "predictions.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return report


@contextmanager
def run_progress(plan: RunPlan, show: bool):
    """Progress of a run on stderr (images done, rate, time left, failures) when `show`; yields advance(record)."""
    report = ProgressReport(len(plan.series), initial=len(plan.series) - len(plan.todo)) if show else None
    failed = len(plan.scan_problems) + sum(1 for r in plan.journal.records.values() if r.row is None)

    def advance(record: ImageRecord) -> None:
        nonlocal failed
        failed += record.row is None
        if report:
            report.update(report.done + 1, failed)

    try:
        yield advance
    finally:
        if report:
            report.close()


def _read(engine: InferenceEngine, registry: ModelRegistry, image, chosen: ModelManifest | None, path: Path,
          report: BatchReport):
    """(model, result) for one image, or (model or None, None) with the reason added to the report's problems."""
    model = chosen
    try:
        route = choose_model(image, registry, lambda models: engine.guard_scores(models, image), forced=chosen)
        model = route.model
        if model is None:
            report.problems.append(LoadProblem(path, route.reason))
            return None, None
        log.info("%s: %s", printable(str(path)), route.reason)
        return model, replace(engine.run(model, image), route=route.reason)
    except RadLensError as error:  # the model's, the package's, the device's: their own words
        what = model.name if model else "choosing a model"
        report.problems.append(LoadProblem(path, f"{what} could not run: {error}"))
    except Exception as error:  # a bug; one image's surprise must not cost the others' rows
        what = model.name if model else "choosing a model"
        log.debug("%s failed on %s", what, printable(str(path)), exc_info=True)
        report.problems.append(LoadProblem(path, f"{what} could not run ({describe(error)})"))
    return model, None


def _write_outputs(out: Path, relative: str, image, outcome: InferenceResult, visualizations: bool) -> None:
    task = TASKS[outcome.task]
    for folder, pixels in task.files(outcome).items():
        _write_png(out / folder / Path(relative).with_suffix(".png"), pixels)
    if visualizations:
        _write_png(out / "visualizations" / Path(relative).with_suffix(".png"),
                   cv2.cvtColor(task.picture(image, outcome), cv2.COLOR_RGB2BGR))


def _write_png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(".png", pixels)
    if not ok:
        raise OSError(f"could not encode {path.name}")
    encoded.tofile(str(path))


def _relative(path: Path, source: Path) -> str:
    """The image's name in every output: relative to `source`, bytes that are not UTF-8 written as \\xNN."""
    try:
        relative = path.resolve().relative_to(source.resolve()).as_posix() if source.is_dir() else path.name
    except ValueError:
        relative = path.name
    return printable(relative)


def _interval(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}" if minutes >= 60 else f"{minutes}:{seconds:02d}"
