"""`radlens predict`: every image in a folder through a model, to predictions.csv, masks and pictures."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from app.core.errors import RadLensError
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
from app.io.study_loader import decode_series, scan


log = logging.getLogger("radlens.predict")


@dataclass
class BatchReport:
    predicted: int = 0
    problems: list[LoadProblem] = field(default_factory=list)


def predict_folder(source: Path, out: Path, *, model_name: str | None = None, device: str = "auto",
                   visualizations: bool = True, registry: ModelRegistry | None = None,
                   progress=None, exam_list: Path | None = None, bundle: BundleWriter | None = None) -> BatchReport:
    """Run a model on every readable image under `source`: `model_name` when given, else the one
    routing.choose_model picks per image; unreadable images, and those no model fits, are listed, not fatal.

    Each row's columns after `image` and `model` are its task's (tasks/). When every prediction comes from
    one task with columns of its own (GLAM: image_index, benign_pred, malignant_pred, and the labels when
    `exam_list` gives them), predictions.csv has those instead.
    `bundle`: each result also goes into it (DICOM SEG now, findings SR at its finish), for a PACS."""
    exam_labels = read_exam_labels(exam_list) if exam_list else {}
    registry = registry or ModelRegistry.discover()
    chosen = registry.get(model_name) if model_name else None
    result = scan([source])
    report = BatchReport(problems=list(result.problems))
    series = [s for study in result.studies for s in study.series]
    engine = InferenceEngine(device)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, str]] = []
    outcomes: list[tuple[Path, InferenceResult]] = []
    columns: list[str] = ["image", "model"]
    for done, item in enumerate(series, start=1):
        path = item.first.path
        relative = _relative(path, source)
        image, problems = decode_series(item)
        report.problems += problems
        if image is not None:
            model, outcome = _read(engine, registry, image, chosen, path, report)
            if outcome is not None:
                rows.append({"image": relative, "model": model.name, **TASKS[outcome.task].csv_row(outcome)})
                outcomes.append((path, outcome))
                columns += [c for c in rows[-1] if c not in columns]
                _write_outputs(out, relative, image, outcome, visualizations)
                if bundle is not None:
                    bundle.add(ImageResult(path, outcome, is_dicom=image.info.source_format == "dicom"))
                report.predicted += 1
        if progress:
            progress(done, len(series))
    tasks = {outcome.task for _, outcome in outcomes}
    own = TASKS[tasks.pop()].own_table(outcomes, exam_labels) if len(tasks) == 1 else None
    if own:
        columns, rows = own
    with open(out / "predictions.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return report


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
