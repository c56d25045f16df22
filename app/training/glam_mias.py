"""Training the GLAM family on mini-MIAS, weakly supervised (image-level benign / malignant labels).

Sizes: mini-MIAS is 1024 x 1024 at 200 micron. Its views are read at 400 micron (resample 0.5) in a
512 x 320 window that holds every MIAS breast after cropping, with 128-pixel patches (51 mm, about
the tissue a 512-pixel patch covers at the official resolution). Half the resolution of the data
quarters the cost of every training step, which is what makes training fit a 2-core CPU.

Split by patient: mdb(2k-1) and mdb(2k) are the two breasts of one woman and stay in one fold.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from app.inference.glam.crop import CropSettings
from app.inference.glam.networks import GlamNetwork
from app.inference.glam.pipeline import (GlamSettings, PreparedView, chest_wall_on_right, cut_patches, fuse,
                                         global_outputs, prepare_view, select_patches, top_t_pool)
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
    lesions: tuple[Lesion, ...]

    @property
    def targets(self) -> np.ndarray:
        return np.array([self.label == 1, self.label == 2], np.float32)


def mias_cases(root: Path = SHARED_DATASETS / "mias") -> list[MiasCase]:
    if not (root / "labels.csv").is_file():
        raise FileNotFoundError(f"mini-MIAS not found at {root} (labels.csv missing)")
    lesions: dict[str, list[Lesion]] = {}
    with open(root / "rois.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["severity"] in ("B", "M") and row["x"] and row["y_image_top_origin"]:
                lesions.setdefault(row["image_id"], []).append(
                    Lesion(float(row["x"]), float(row["y_image_top_origin"]), float(row["radius"] or 0),
                           row["severity"]))
    cases = []
    with open(root / "labels.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            number = int(row["image_id"][3:])
            cases.append(MiasCase(row["image_id"], root / row["file"], LABELS.index(row["label"]),
                                  f"patient{(number + 1) // 2:03d}", tuple(lesions.get(row["image_id"], ()))))
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


def _shifted(windows: torch.Tensor, tissue: torch.Tensor, rng: np.random.Generator
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Augmentation: windows (and their tissue cells) moved by -1, 0 or 1 saliency cell, random contrast."""
    dy, dx = (int(v) for v in rng.integers(-1, 2, 2))
    moved = torch.roll(windows, shifts=(dy * 16, dx * 16), dims=(2, 3))
    gain = torch.from_numpy(rng.uniform(0.8, 1.25, (len(windows), 1, 1, 1)).astype(np.float32))
    return moved * gain, torch.roll(tissue, shifts=(dy, dx), dims=(2, 3))


def _fit(model: torch.nn.Module, count: int, epochs: int, batch: int, learning_rate: float, loss_of,
         rng: np.random.Generator, progress=None, cosine: bool = False) -> None:
    """AdamW over shuffled batches of `count` samples; `loss_of(index)` gives a batch's loss."""
    optimiser = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=1e-4)
    steps = epochs * -(-count // batch)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps) if cosine else None
    model.train()
    done = 0
    for _ in range(epochs):
        order = rng.permutation(count)
        for start in range(0, count, batch):
            loss = loss_of(torch.from_numpy(order[start:start + batch]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if schedule is not None:
                schedule.step()
            done += 1
            if progress:
                progress(done, steps)
    model.eval()


def _balanced_bce(score: torch.Tensor, target: torch.Tensor, positive_share: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with each class's positives weighted up by how rare they are."""
    share = positive_share.clamp(0.05, 0.95)
    weight = 1 + ((1 - share) / share - 1) * target
    return F.binary_cross_entropy(score.clamp(1e-6, 1 - 1e-6), target, weight=weight)


def train_global(network: GlamNetwork, windows: torch.Tensor, tissue: torch.Tensor, targets: torch.Tensor, epochs: int,
                 settings: GlamSettings, seed: int, progress=None, batch: int = 4) -> None:
    """Binary cross-entropy on each map's top-t pooled score and on their mean, class-balanced;
    L1 on the saliency keeps it sparse."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model, share = network.global_network, targets.mean(0)

    def loss_of(index: torch.Tensor) -> torch.Tensor:
        (x, cells), y = _shifted(windows[index], tissue[index], rng), targets[index]
        maps = [m * cells for m in model(x)] if settings.tissue_only else model(x)
        pooled = [top_t_pool(m, settings.top_t) for m in maps]
        scores = torch.stack(pooled).mean(0)
        return sum(_balanced_bce(p, y, share) for p in [*pooled, scores]) + 1e-3 * sum(m.mean() for m in maps)

    _fit(model, len(windows), epochs, batch, 2e-3, loss_of, rng, progress, cosine=True)


def train_local(network: GlamNetwork, windows: torch.Tensor, tissue: torch.Tensor, targets: torch.Tensor, epochs: int,
                settings: GlamSettings, seed: int, progress=None, batch: int = 8) -> None:
    """The local network on the patch the trained global network selects in each window, weakly
    supervised by the image's labels through top-t pooling of its map."""
    with torch.inference_mode():
        corners = [select_patches(global_outputs(network, windows[i:i + 16], settings.top_t,
                                                 _cells(tissue[i:i + 16], settings))[1], settings.patch)
                   for i in range(0, len(windows), 16)]
    patches = cut_patches(windows, [c for chunk in corners for c in chunk], settings.patch).clone()
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model, share = network.detection_network, targets.mean(0)

    def loss_of(index: torch.Tensor) -> torch.Tensor:
        x = patches[index]
        if rng.random() < 0.5:
            x = torch.flip(x, dims=(2,))
        return _balanced_bce(top_t_pool(model(x), settings.top_t), targets[index], share)

    _fit(model, len(patches), epochs, batch, 3e-4, loss_of, rng, progress)


def _cells(tissue: torch.Tensor, settings: GlamSettings) -> torch.Tensor | None:
    return tissue if settings.tissue_only else None


def predict(network: GlamNetwork, windows: torch.Tensor, tissue: torch.Tensor, settings: GlamSettings,
            with_local: bool = True) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """(scores (N, 2), fused or global saliency on the 4-pixel grid (N, 2, H/4, W/4), patch corners)."""
    scores, maps, corners = [], [], []
    with torch.inference_mode():
        for start in range(0, len(windows), 8):
            chunk = windows[start:start + 8]
            s, saliency, _ = global_outputs(network, chunk, settings.top_t,
                                            _cells(tissue[start:start + 8], settings))
            picked = select_patches(saliency, settings.patch)
            local = (network.detection_network(cut_patches(chunk, picked, settings.patch)) if with_local
                     else torch.zeros(len(chunk), 2, settings.patch // 4, settings.patch // 4))
            scores.append(s.numpy())
            maps.append(fuse(saliency, local, picked).numpy())
            corners += picked
    return np.concatenate(scores), np.concatenate(maps), corners


def evaluate(cases: list[MiasCase], views: list[PreparedView], scores: np.ndarray, maps: np.ndarray,
             corners: list[tuple[int, int]], settings: GlamSettings) -> dict:
    """AUROC for malignant and for any lesion; the share of lesion centres inside the selected patch;
    the pointing game: the maximum of the lesion's class saliency inside the lesion (at least 8 px)."""
    labels = np.array([c.label for c in cases])
    inside = hits = total = 0
    for case, view, fused, (row, col) in zip(cases, views, maps, corners):
        for lesion in case.lesions:
            r, c, radius = lesion_in_window(view, lesion, settings)
            total += 1
            inside += int(row <= r < row + settings.patch and col <= c < col + settings.patch)
            channel = fused[0 if lesion.severity == "B" else 1]
            peak_r, peak_c = np.unravel_index(int(np.argmax(channel)), channel.shape)
            distance = np.hypot((peak_r + 0.5) * 4 - r, (peak_c + 0.5) * 4 - c)
            hits += int(distance <= max(radius, 8.0))
    return {"images": len(cases), "malignant": int((labels == 2).sum()), "benign": int((labels == 1).sum()),
            "auroc_malignant": round(auroc(scores[:, 1], labels == 2), 3),
            "auroc_any_lesion": round(auroc(scores.max(1), labels > 0), 3),
            "auroc_benign": round(auroc(scores[:, 0], labels == 1), 3),
            "lesions_with_centre": total,
            "lesion_centre_in_patch": round(inside / total, 3) if total else None,
            "pointing_game": round(float(hits) / total, 3) if total else None}


def bootstrap_interval(scores: np.ndarray, positive: np.ndarray, seed: int = 0, rounds: int = 2000) -> list[float]:
    """95% percentile bootstrap interval of the AUROC (images resampled with replacement)."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(rounds):
        pick = rng.integers(0, len(scores), len(scores))
        if positive[pick].any() and not positive[pick].all():
            values.append(auroc(scores[pick], positive[pick]))
    return [round(float(v), 3) for v in np.percentile(values, [2.5, 97.5])]
