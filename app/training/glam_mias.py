"""mini-MIAS for the GLAM family: the views, labels and lesion circles, and how a model is judged on them.

Sizes: mini-MIAS is 1024 x 1024 at 200 micron. Its views are read at 400 micron (resample 0.5) in a
512 x 320 window that holds every MIAS breast after cropping, with 128-pixel patches (51 mm, about
the tissue a 512-pixel patch covers at the official resolution). Half the resolution of the data
quarters the cost of every training step and of every exam read on a CPU.

Split by patient: mdb(2k-1) and mdb(2k) are the two breasts of one woman and stay in one fold.
A compact copy of the data (`radlens train mg-glam-lite --export-data DIR`) holds the views already
resampled; its `export.json` says by how much, and the cases' coordinates are given in its pixels.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from app.inference.glam.crop import CropSettings
from app.inference.glam.pipeline import (GlamSettings, PreparedView, chest_wall_on_right, cut_patches, fuse,
                                         global_outputs, prepare_view, select_patches)
from app.training.datasets import SHARED_DATASETS
from app.training.metrics import auroc

MIAS_SETTINGS = GlamSettings(window=(512, 320), patch=128, top_t=0.03, resample=0.5, pixel_size_mm=0.4,
                             crop=CropSettings(erode_iterations=25, buffer=12, background=0.08),
                             default_view="MLO", tissue_only=True)
LABELS = ("normal", "benign", "malignant")


@dataclass(frozen=True)
class Lesion:
    x: float  # column and row in the source image (rows from the top)
    y: float
    radius: float
    severity: str  # "B" or "M"


@dataclass(frozen=True)
class MiasCase:
    name: str
    path: Path
    label: int  # index in LABELS
    patient: str
    lesions: tuple[Lesion, ...]  # those with a centre, in the stored image's pixels
    unlocated: str = ""  # severities ("B", "M") of this view's lesions that have no centre in rois.csv

    @property
    def targets(self) -> np.ndarray:
        return np.array([self.label == 1, self.label == 2], np.float32)


MIAS = SHARED_DATASETS / "mias"
EXPORT_NAME = "export.json"


def stored_scale(root: Path) -> float:
    """Stored pixels per original mini-MIAS pixel: 1 for the data set itself, less for a compact copy."""
    path = Path(root) / EXPORT_NAME
    return float(json.loads(path.read_text(encoding="utf-8"))["scale"]) if path.is_file() else 1.0


def mias_cases(root: Path = MIAS) -> list[MiasCase]:
    root = Path(root)
    if not (root / "labels.csv").is_file():
        raise FileNotFoundError(f"mini-MIAS not found at {root} (labels.csv missing)")
    scale = stored_scale(root)
    lesions: dict[str, list[Lesion]] = {}
    unlocated: dict[str, str] = {}
    with open(root / "rois.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["severity"] in ("B", "M") and row["x"] and row["y_image_top_origin"]:
                lesions.setdefault(row["image_id"], []).append(
                    Lesion(float(row["x"]) * scale, float(row["y_image_top_origin"]) * scale,
                           float(row["radius"] or 0) * scale, row["severity"]))
            elif row["severity"] in ("B", "M"):
                unlocated[row["image_id"]] = unlocated.get(row["image_id"], "") + row["severity"]
    cases = []
    with open(root / "labels.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            number = int(row["image_id"][3:])
            cases.append(MiasCase(row["image_id"], root / row["file"], LABELS.index(row["label"]),
                                  f"patient{(number + 1) // 2:03d}", tuple(lesions.get(row["image_id"], ())),
                                  unlocated.get(row["image_id"], "")))
    return cases


def prepare_case(case: MiasCase, settings: GlamSettings = MIAS_SETTINGS) -> PreparedView:
    pixels = cv2.imread(str(case.path), cv2.IMREAD_GRAYSCALE)
    if pixels is None:
        raise OSError(f"cannot read {case.path}")
    return prepare_view(pixels, chest_wall_on_right(pixels, settings.crop.background), "MLO", settings)


def lesion_in_window(view: PreparedView, lesion: Lesion, settings: GlamSettings) -> tuple[float, float, float]:
    """(row, column, radius) of a lesion in the window (model's frame, window pixels)."""
    y0, _, x0, x1 = view.placement.crop.window_location
    row = lesion.y * settings.resample - y0
    col = lesion.x * settings.resample - x0
    if view.placement.crop.mirrored:
        col = (x1 - x0 - 1) - col
    return row - view.placement.top, col - view.placement.left, lesion.radius * settings.resample


def predict(network, windows: torch.Tensor, tissue: torch.Tensor, settings: GlamSettings,
            with_local: bool = True) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """(scores (N, 2), fused or global saliency on the 4-pixel grid (N, 2, H/4, W/4), patch corners) of
    any GLAM-family network, read as inference reads them."""
    scores, maps, corners = [], [], []
    with torch.inference_mode():
        for start in range(0, len(windows), 8):
            chunk = windows[start:start + 8]
            s, saliency, _ = global_outputs(network, chunk, settings.top_t,
                                            tissue[start:start + 8] if settings.tissue_only else None)
            picked = select_patches(saliency, settings.patch)
            local = (network.detection_network(cut_patches(chunk, picked, settings.patch)) if with_local
                     else torch.zeros(len(chunk), 2, settings.patch // 4, settings.patch // 4, device=chunk.device))
            scores.append(s.float().cpu().numpy())
            maps.append(fuse(saliency.float(), local.float(), picked).cpu().numpy())
            corners += picked
    return np.concatenate(scores), np.concatenate(maps), corners


def lesion_hits(cases: list[MiasCase], views: list[PreparedView], maps: np.ndarray,
                corners: list[tuple[int, int]], settings: GlamSettings) -> tuple[np.ndarray, np.ndarray]:
    """Per lesion with a centre: (centre inside the selected patch, pointing game hit: the maximum of the
    lesion's class saliency within the lesion's radius, at least 8 px, of its centre)."""
    inside, hits = [], []
    for case, view, fused, (row, col) in zip(cases, views, maps, corners):
        for lesion in case.lesions:
            r, c, radius = lesion_in_window(view, lesion, settings)
            inside.append(row <= r < row + settings.patch and col <= c < col + settings.patch)
            channel = fused[0 if lesion.severity == "B" else 1]
            peak_r, peak_c = np.unravel_index(int(np.argmax(channel)), channel.shape)
            distance = np.hypot((peak_r + 0.5) * 4 - r, (peak_c + 0.5) * 4 - c)
            hits.append(distance <= max(radius, 8.0))
    return np.array(inside, bool), np.array(hits, bool)


def evaluate(cases: list[MiasCase], views: list[PreparedView], scores: np.ndarray, maps: np.ndarray,
             corners: list[tuple[int, int]], settings: GlamSettings) -> dict:
    """AUROC for malignant and for any lesion; the share of lesion centres inside the selected patch;
    the pointing game (`lesion_hits`)."""
    labels = np.array([c.label for c in cases])
    inside, hits = lesion_hits(cases, views, maps, corners, settings)
    total = len(inside)
    return {"images": len(cases), "malignant": int((labels == 2).sum()), "benign": int((labels == 1).sum()),
            "auroc_malignant": round(auroc(scores[:, 1], labels == 2), 3),
            "auroc_any_lesion": round(auroc(scores.max(1), labels > 0), 3),
            "auroc_benign": round(auroc(scores[:, 0], labels == 1), 3),
            "lesions_with_centre": total,
            "lesion_centre_in_patch": round(float(inside.mean()), 3) if total else None,
            "pointing_game": round(float(hits.mean()), 3) if total else None}
