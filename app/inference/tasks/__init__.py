"""The AI tasks, one module each: how a task's model runs on an image, and the layers, predictions.csv
columns, pictures and panel text its results make.

Adding a task is adding a module here that defines `TASK`, an instance of a `Task` subclass whose `name`
is the module's name and the manifests' `task`. The engine (runner.py) keeps the networks, the device, the
GPU fallback and the out-of-distribution guard, and hands the rest to `TASKS[manifest.task]`. Task modules
import torch only inside `run`, so that the window can show results' text before torch is loaded.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from app.core.errors import RadLensError
from app.core.image import LoadedImage
from app.core.layers import MASK, OverlayLayer, mask_contours
from app.inference.manifest import ModelManifest
from app.inference.options import ExplainOptions
from app.inference.results import InferenceResult

if TYPE_CHECKING:
    import torch


class InferenceError(RadLensError):
    """A model that could not run on an image, with the reason in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__("", reason)


@dataclass(frozen=True)
class PanelText:
    """What the results panel says of a result besides the title, the route and the class bars."""

    notes: tuple[str, ...] = ()  # how to read the result (the panel adds the model's and the guard's notes)
    caption: str = ""  # what the class bars are
    facts: tuple[tuple[str, str], ...] = ()  # (label, text) rows under the bars


class Task:
    """One kind of model output. The defaults fit a task whose results are class probabilities."""

    name = ""
    network_may_hold_trunk = True  # its network may carry the shared trunk unchanged (trunk.py)

    def run(self, network: torch.nn.Module, device: torch.device, manifest: ModelManifest, image: LoadedImage,
            frame: int, options: ExplainOptions) -> InferenceResult:
        """The result of `network` (on `device`) on one frame of `image`, the guard's fields left empty."""
        raise NotImplementedError

    def layers(self, result: InferenceResult) -> list[OverlayLayer]:
        """The overlay layers the result makes on its image."""
        return []

    def csv_row(self, result: InferenceResult) -> dict[str, str]:
        """The result's predictions.csv columns after `image` and `model`."""
        return {**probability_columns(result), **guard_column(result)}

    def own_table(self, results: list[tuple[Path, InferenceResult]], labels: dict[str, tuple[int, ...]]
                  ) -> tuple[list[str], list[dict[str, str]]] | None:
        """(columns, rows) of this task's own predictions.csv, for a run whose every image is of this task
        (`labels` by image file stem, from predict's --exam-list); None: the shared columns."""
        return None

    def files(self, result: InferenceResult) -> dict[str, np.ndarray]:
        """Images `radlens predict` writes beside predictions.csv, pictures or not: folder -> pixels."""
        return {}

    def picture(self, image: LoadedImage, result: InferenceResult, frame: int = 0) -> np.ndarray:
        """The results picture (RGB uint8): the image, then what the model made of it, side by side."""
        raise NotImplementedError

    def panel(self, result: InferenceResult) -> PanelText:
        return PanelText(caption=probability_caption(result))


def new_result(manifest: ModelManifest, image: LoadedImage, device: torch.device, **fields) -> InferenceResult:
    """A result of `manifest`'s model on `image`, with what every result says (its warning, its calibration)."""
    return InferenceResult(image_identity=image.info.identity, model_key=manifest.key, task=manifest.task,
                           classes=manifest.classes, device=str(device), note=manifest.warning,
                           calibrated=manifest.settings.get("temperature") is not None, **fields)


def half_precision(manifest: ModelManifest, device: torch.device):
    """Float16 autocast on CUDA for packages that allow it (`half_precision`); no change elsewhere."""
    import torch

    return torch.autocast(device_type=device.type, dtype=torch.float16,
                          enabled=manifest.half_precision and device.type == "cuda")


def probability_columns(result: InferenceResult) -> dict[str, str]:
    if result.probabilities is None:
        return {}
    return {f"p_{name}": f"{float(p):.6f}" for name, p in zip(result.classes, result.probabilities)}


def guard_column(result: InferenceResult) -> dict[str, str]:
    if result.ood_distance is None:
        return {}
    return {"out_of_distribution": "yes" if result.out_of_distribution else "no"}


def probability_caption(result: InferenceResult) -> str:
    return ("probability, calibrated on held-out data" if result.calibrated
            else "probability (this model is not calibrated)")


def mask_layer(result: InferenceResult) -> OverlayLayer:
    """The lesion mask of a result (a segmenter's, or the lesion mask a classifier's result carries)."""
    return OverlayLayer("Segmentation", MASK, result.image_identity, data=result.mask, threshold=result.threshold,
                        opacity=0.6, source=result.mask_source)


def mask_fraction(result: InferenceResult) -> float:
    """The share of the image's pixels at or above the mask's threshold."""
    return float((result.mask >= result.threshold).mean())


def mask_file(result: InferenceResult) -> np.ndarray:
    """The mask as predict writes it (masks/): 255 at or above the threshold, else 0."""
    return np.where(result.mask >= result.threshold, 255, 0).astype(np.uint8)


def mask_outlined(base: np.ndarray, result: InferenceResult) -> np.ndarray:
    """A copy of the RGB picture `base` with the mask's outline drawn on it."""
    outlined = base.copy()
    for contour in mask_contours(result.mask, result.threshold):
        cv2.polylines(outlined, [np.round(contour - 0.5).astype(np.int32)], True, (255, 64, 64), 2)
    return outlined


def mask_fact(result: InferenceResult) -> tuple[str, str]:
    """The panel's line on the mask: how much of the image it covers at its threshold, and which model drew it
    when that is not the result's own (a classifier's lesion mask)."""
    drawn_by = f" ({result.mask_model.split('@')[0]})" if result.mask_model else ""
    return "Segmented", f"{mask_fraction(result) * 100:.1f}% of the image at p ≥ {result.threshold:.2f}{drawn_by}"


def discover(path: Iterable[str], package: str) -> dict[str, Task]:
    """Every `TASK` of the modules in the folders `path` of `package`, by name."""
    tasks: dict[str, Task] = {}
    for module in pkgutil.iter_modules(path):
        task = importlib.import_module(f"{package}.{module.name}").TASK
        tasks[task.name] = task
    return tasks


TASKS: dict[str, Task] = discover(__path__, __name__)
