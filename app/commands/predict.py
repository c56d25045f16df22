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
from app.inference.runner import InferenceEngine
from app.inference.visualize import result_picture
from app.io.errors import LoadProblem
from app.io.study_loader import decode_series, scan


log = logging.getLogger("radlens.predict")
GLAM_COLUMNS = ("image_index", "benign_pred", "malignant_pred", "benign_label", "malignant_label")
# The patch the local network read, image pixels, so localisation can be judged from the file alone.
PATCH_COLUMNS = ("patch_x", "patch_y", "patch_w", "patch_h")


@dataclass
class BatchReport:
    predicted: int = 0
    problems: list[LoadProblem] = field(default_factory=list)


def predict_folder(source: Path, out: Path, *, model_name: str | None = None, device: str = "auto",
                   visualizations: bool = True, registry: ModelRegistry | None = None,
                   progress=None, exam_list: Path | None = None, bundle: BundleWriter | None = None) -> BatchReport:
    """Run a model on every readable image under `source`: `model_name` when given, else the one
    routing.choose_model picks per image; unreadable images, and those no model fits, are listed, not fatal.

    When every prediction comes from a GLAM model, predictions.csv has GLAM's own columns
    (image_index, benign_pred, malignant_pred, and the labels when `exam_list` gives them).
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
    glam_rows: list[dict[str, str]] = []
    columns: list[str] = ["image", "model"]
    for done, item in enumerate(series, start=1):
        path = item.first.path
        relative = _relative(path, source)
        image, problems = decode_series(item)
        report.problems += problems
        if image is not None:
            model, outcome = _read(engine, registry, image, chosen, path, report)
            if outcome is not None:
                rows.append(_row(relative, model, outcome))
                if model.task == "glam":
                    glam_rows.append(_glam_row(path, outcome, exam_labels))
                columns += [c for c in rows[-1] if c not in columns]
                _write_outputs(out, relative, image, outcome, visualizations)
                if bundle is not None:
                    bundle.add(ImageResult(path, outcome, is_dicom=image.info.source_format == "dicom"))
                report.predicted += 1
        if progress:
            progress(done, len(series))
    if rows and len(glam_rows) == len(rows):
        rows, columns = glam_rows, [*(GLAM_COLUMNS if exam_labels else GLAM_COLUMNS[:3]), *PATCH_COLUMNS]
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


def _row(relative: str, model: ModelManifest, outcome) -> dict[str, str]:
    row = {"image": relative, "model": model.name}
    if outcome.probabilities is not None:
        row.update({f"p_{name}": f"{float(p):.6f}" for name, p in zip(model.classes, outcome.probabilities)})
    if outcome.ood_distance is not None:
        row["out_of_distribution"] = "yes" if outcome.out_of_distribution else "no"
    if outcome.mask is not None:  # p_<class>: the highest lesion probability of any pixel
        row.update({f"p_{name}": f"{float(outcome.mask.max()):.6f}" for name in model.classes})
        row["mask_fraction"] = f"{float((outcome.mask >= outcome.threshold).mean()):.6f}"
    return {**row, **_patch_columns(outcome)}


def _patch_columns(outcome) -> dict[str, str]:
    if not outcome.patches:
        return {}
    box = outcome.patches[0]
    return dict(zip(PATCH_COLUMNS, (f"{v:.0f}" for v in (box.x, box.y, box.width, box.height))))


def _glam_row(path: Path, outcome, exam_labels: dict[str, tuple[int, int]]) -> dict[str, str]:
    benign, malignant = (float(p) for p in outcome.probabilities)
    row = {"image_index": printable(path.stem), "benign_pred": f"{benign:.6f}", "malignant_pred": f"{malignant:.6f}"}
    if path.stem in exam_labels:
        row["benign_label"], row["malignant_label"] = (str(v) for v in exam_labels[path.stem])
    return {**row, **_patch_columns(outcome)}


def _write_outputs(out: Path, relative: str, image, outcome, visualizations: bool) -> None:
    if outcome.mask is not None:
        _write_png(out / "masks" / Path(relative).with_suffix(".png"),
                   np.where(outcome.mask >= outcome.threshold, 255, 0).astype(np.uint8))
    if visualizations:
        picture = result_picture(image, outcome)
        _write_png(out / "visualizations" / Path(relative).with_suffix(".png"),
                   cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))


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
