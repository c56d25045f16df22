"""`radlens train mg-glam-mias`: the GLAM package trained on mini-MIAS, with its model card."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np
import torch

from app.core.progress import terminal_progress
from app.inference.glam.networks import GlamNetwork
from app.inference.glam.pipeline import tissue_batch
from app.inference.package_writer import write_model_package
from app.training.glam_mias import (LABELS, MIAS_SETTINGS, bootstrap_interval, evaluate, mias_cases, predict,
                                    prepare_case, train_global, train_local)
from app.training.splits import stratified_group_folds

NAME = "mg-glam-mias"
GLOBAL_EPOCHS, LOCAL_EPOCHS, SEED = 16, 1, 0
MIAS_STEM_POOL_PADDING = 1  # how mg-glam-mias was trained (before the official padding 0 was pinned)


def train_glam(out: Path, epochs: int | None = None, local_epochs: int | None = None,
               all_folds: bool = False) -> int:
    started = time.perf_counter()
    epochs, local_epochs = epochs or GLOBAL_EPOCHS, LOCAL_EPOCHS if local_epochs is None else local_epochs
    torch.manual_seed(SEED)
    cases = mias_cases()
    print(f"{NAME}: {len(cases)} mini-MIAS views of {len({c.patient for c in cases})} patients; windows "
          f"{MIAS_SETTINGS.window} at resample {MIAS_SETTINGS.resample}")
    views = [prepare_case(c) for c in cases]
    windows = torch.from_numpy(np.stack([v.window for v in views])[:, None].copy())
    tissue = tissue_batch(views)
    targets = torch.from_numpy(np.stack([c.targets for c in cases]))
    labels = [c.label for c in cases]
    folds = stratified_group_folds(labels, [c.patient for c in cases], 5, SEED)
    cv_figures = []
    for fold in range(5 if all_folds else 1):
        train, held = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
        print(f"fold {fold + 1}/5: global network on {len(train)} views, {epochs} epochs; {len(held)} held out")
        network = GlamNetwork(stem_pool_padding=MIAS_STEM_POOL_PADDING)
        train_global(network, windows[train], tissue[train], targets[train], epochs, MIAS_SETTINGS, SEED, terminal_progress)
        if fold == 0:
            shipped = network
            local = local_training_views(train, labels)
            print(f"local network on the patches of {len(local)} views, {local_epochs} epoch(s)")
            train_local(network, windows[local], tissue[local], targets[local], local_epochs, MIAS_SETTINGS, SEED,
                        terminal_progress)
        scores, maps, corners = predict(network, windows[held], tissue[held], MIAS_SETTINGS, with_local=fold == 0)
        figures = evaluate([cases[i] for i in held], [views[i] for i in held], scores, maps, corners,
                           MIAS_SETTINGS)
        if fold == 0:
            held_labels = np.array([labels[i] for i in held])
            figures["auroc_malignant_95ci"] = bootstrap_interval(scores[:, 1], held_labels == 2)
            figures["auroc_any_lesion_95ci"] = bootstrap_interval(scores.max(1), held_labels > 0)
            held_out = figures
        cv_figures.append(figures)
        print(f"fold {fold + 1}: {figures}")
    wall = time.perf_counter() - started
    card = model_card(cases, folds, held_out, cv_figures if all_folds else None, epochs, local_epochs, wall)
    manifest = write_glam_package(out / NAME, shipped, card, cases[0].path)
    print(f"wrote {manifest.folder} ({manifest.weights_path.stat().st_size / 1e6:.1f} MB); CPU latency "
          f"{manifest.card['cpu_latency_ms']} ms per view")
    return 0


def write_glam_package(folder: Path, network: GlamNetwork, card: dict, example: Path):
    """Weights stored in half precision (48 MB instead of 96; the app computes in float32), then the
    CPU latency of one view measured through the app's engine and added to the card."""
    from app.inference.runner import InferenceEngine
    from app.io.study_loader import decode_image, read_info

    manifest = write_model_package(folder, network.half(), package_fields(card))
    engine, image = InferenceEngine("cpu"), decode_image(read_info(example))
    engine.run(manifest, image)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        engine.run(manifest, image)
        times.append((time.perf_counter() - start) * 1000)
    card = {**card, "cpu_latency_ms": {"per_view_median": round(sorted(times)[1]),
                                       "threads": torch.get_num_threads(),
                                       "note": "global + local network and fusion, one MIAS view, this 2-core CPU"}}
    return write_model_package(folder, network, package_fields(card))


def local_training_views(train: np.ndarray, labels: list[int]) -> np.ndarray:
    """Every training view with a lesion and half as many normal ones: the local network costs ~25x
    the global one per view on a CPU, and normal patches teach it less."""
    lesion = np.array([i for i in train if labels[i] > 0])
    normal = np.array([i for i in train if labels[i] == 0])
    chosen = np.random.default_rng(SEED).choice(normal, size=min(len(normal), len(lesion) // 2), replace=False)
    return np.sort(np.concatenate([lesion, chosen]))


def package_fields(card: dict) -> dict:
    window = list(MIAS_SETTINGS.window)
    return {
        "name": NAME, "version": "1.0.0", "modality": ["MG"], "task": "glam", "classes": ["benign", "malignant"],
        "network": {"type": "glam", "stem_pool_padding": network.global_network.downsampling_branch.stem_pool_padding},
        "input": {"size": window, "channels": 1, "resize": "letterbox",
                  "normalization": {"mean": [0.0], "std": [1.0]}},
        "half_precision": False,
        "settings": {"glam": MIAS_SETTINGS.to_dict()},
        "licence": {"weights": "Apache-2.0 (RadLens; trained from scratch, no part of the official GLAM weights)",
                    "data": "mini-MIAS (Suckling et al. 1994), MIAS licence: research use"},
        "card": card,
    }


def model_card(cases, folds, held_out: dict, cv_figures: list[dict] | None, epochs: int, local_epochs: int,
               wall: float) -> dict:
    counts = {name: sum(c.label == i for c in cases) for i, name in enumerate(LABELS)}
    card = {
        "summary": ("GLAM-style global-local model for mammograms: benign and malignant saliency maps, one "
                    "selected patch re-read by the local network. Trained on mini-MIAS MLO views only (film, "
                    "digitised); expect it to transfer poorly to digital screening mammograms. Scores are not "
                    "calibrated. For research use; not a medical device."),
        "data": {"dataset": "mini-MIAS", "images": len(cases), "per_class": counts,
                 "patients": len({c.patient for c in cases}),
                 "labels": "image level only (weak supervision); rois.csv is used for evaluation only"},
        "split": ("one held-out split: fold 1 of 5 (stratified by image label, grouped by patient: mdb(2k-1) and "
                  "mdb(2k) together; seed 0); the shipped weights are the model trained on the other four folds"),
        "input": ("view resampled to 400 micron (x0.5), cropped, right views mirrored, 512 x 320 window, "
                  "standardised per window; 128-pixel patch"),
        "training": {"global_epochs": epochs, "local_epochs": local_epochs, "optimiser": "AdamW 2e-3, cosine decay, batch 4",
                     "loss": "BCE on each top-t pooled map and their mean, class-weighted; L1 1e-3 on the maps",
                     "augmentation": "shift by -16, 0 or 16 px, contrast x0.8-1.25 (global); vertical flip (local)",
                     "tissue_only": "saliency kept only where the window holds breast (mini-MIAS windows are "
                                    "largely film background, where the first models put their patches)",
                     "local_views": "every training view with a lesion and half as many normal views",
                     "wall_time_minutes": round(wall / 60, 1),
                     "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, CPU"},
        "metrics": {"held_out": held_out},
        "targets": {"auroc_malignant": 0.80, "lesion_centre_in_patch": 0.60},
    }
    if cv_figures:
        keys = ("auroc_malignant", "auroc_any_lesion", "lesion_centre_in_patch", "pointing_game")
        card["metrics"]["cross_validated_global_only"] = {
            key: {"mean": round(float(np.mean([f[key] for f in cv_figures])), 3),
                  "sd": round(float(np.std([f[key] for f in cv_figures])), 3)} for key in keys}
    return card
