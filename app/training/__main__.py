"""`python -m app.training MODEL [--folds 5] [--out models]`: reproduce a shipped model from ../shared.

Prints progress, writes the package (weights + model.json with its model card) to OUT/MODEL.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from app.paths import install_root

SEGMENTATION = "us-breast-seg"
GLAM = "mg-glam-lite"  # its own options: `radlens train mg-glam-lite --help` (app/training/glam_lite_command.py)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [GLAM]:  # before anything else is imported: it runs without Qt, DICOM or platformdirs
        from app.training.glam_lite_command import main as train_glam_lite

        return train_glam_lite(argv[1:])
    from app.training.recipes import PLANS

    parser = argparse.ArgumentParser(prog="radlens train", description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=sorted([*PLANS, SEGMENTATION, GLAM]))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    parser.add_argument("--out", type=Path, default=install_root() / "models")
    parser.add_argument("--latency-only", action="store_true",
                        help="only measure the CPU latency of the package in OUT again (on a quiet machine)")
    args = parser.parse_args(argv)
    from app.inference.progress import terminal_progress
    from app.training.classify import cross_validate, fold_figures, train_top
    from app.training.datasets import SHARED_DATASETS, list_samples
    from app.training.features import cached_features
    from app.training.metrics import fit_temperature
    from app.training.package import add_ood_guard, remeasure_latency, write_classifier
    from app.training.splits import stratified_group_folds

    if args.model == SEGMENTATION:
        return train_segmentation(args.out, args.epochs)
    plan = PLANS[args.model]
    if args.latency_only:
        figures = remeasure_latency(args.out / plan.name, list_samples(plan.dataset)[0].image)
        print(f"{plan.name}: CPU latency {figures} ms")
        return 0
    recipe = plan.recipe if args.epochs is None else type(plan.recipe)(**{**plan.recipe.__dict__,
                                                                          "epochs": args.epochs})
    torch.manual_seed(recipe.seed)
    np.random.seed(recipe.seed)
    started = time.perf_counter()
    try:
        samples = list_samples(plan.dataset)
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 1
    labels = np.array([s.label for s in samples])
    classes = plan.dataset.classes
    print(f"{plan.name}: {len(samples)} images from {SHARED_DATASETS / plan.dataset.root}, "
          f"{len({s.group for s in samples})} groups; caching the ImageNet trunk's features")
    features = cached_features(samples, progress=terminal_progress)
    folds = stratified_group_folds(labels.tolist(), [s.group for s in samples], args.folds, recipe.seed)
    print(f"{args.folds}-fold cross-validation, {recipe.epochs} epochs per fold")
    logits = cross_validate(features, labels, folds, len(classes), recipe)
    temperature = fit_temperature(logits, labels)
    figures = fold_figures(logits, labels, folds, classes, temperature)
    print(f"temperature {temperature:.3f}; cross-validated {figures}")
    print("final model on all images")
    network = train_top(features, labels, len(classes), recipe, progress=terminal_progress)
    wall = time.perf_counter() - started
    folder = args.out / plan.name
    manifest = write_classifier(folder, network, plan, recipe, samples, labels, folds, figures, temperature,
                                wall_seconds=wall, machine=f"{platform.processor() or platform.machine()}, "
                                                           f"{torch.get_num_threads()} threads")
    add_ood_guard(folder, features)
    print(f"wrote {folder} ({manifest.weights_path.stat().st_size / 1e6:.1f} MB); CPU latency "
          f"{manifest.card['cpu_latency_ms']}")
    return 0


def train_segmentation(out: Path, epochs: int | None) -> int:
    from app.inference.progress import terminal_progress
    from app.training.datasets import BUSI, list_samples
    from app.training.package import write_segmenter
    from app.training.splits import stratified_group_folds
    from app.training.segment import EPOCHS, encoder_maps, evaluate, pretrained_unet, train_decoder

    started = time.perf_counter()
    samples = list_samples(BUSI)
    labels = np.array([s.label for s in samples])
    folds = stratified_group_folds(labels.tolist(), [s.group for s in samples], 5, 0)
    train, held = np.nonzero(folds != 0)[0], np.nonzero(folds == 0)[0]
    print(f"{SEGMENTATION}: {len(samples)} BUSI images; encoder maps of each image and its mirror")
    maps, targets = encoder_maps(pretrained_unet(), samples, progress=terminal_progress)
    print(f"training the decoder on {len(train)} images, {len(held)} held out")
    epochs = epochs or EPOCHS
    network = train_decoder(maps, targets, train, epochs)
    figures = evaluate(network, maps, targets, held, labels)
    print(f"held-out: {figures}")
    pooled = np.asarray(maps[3][train, 0], np.float32).mean(axis=(2, 3))
    split = (f"one held-out split: fold 1 of 5 (stratified by class, near-duplicates grouped; seed 0), {len(held)} "
             f"images; the shipped weights are the model trained on the other {len(train)}")
    manifest = write_segmenter(out / SEGMENTATION, network, samples, split, figures, pooled, epochs,
                               wall_seconds=time.perf_counter() - started,
                               machine=f"{platform.machine()}, {torch.get_num_threads()} threads")
    print(f"wrote {manifest.folder}; CPU latency {manifest.card['cpu_latency_ms']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
