"""One shipped CNN model trained end to end: the recipe chosen on the shifted validation, grouped
cross-validation, calibration on the shifted validation, the final weights, the OOD guard and its card.

Order of work (the most important first, so a run cut short still leaves the package): candidate recipes
on the shifted validation, the final model on every image, then five-fold grouped cross-validation.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from app.inference.ood import FeatureDistribution
from app.training import metrics
from app.training.metrics import fold_figures
from app.training.finetune import (DeviceData, Recipe, classifier_outputs, imagenet_state, segmenter_outputs,
                                   train_classifier, train_segmenter)
from app.training.imagepack import ImagePack
from app.training.shift import describe, look_halves
from app.training.splits import stratified_group_folds


def run_classifier(plan, pack: ImagePack, device: torch.device, candidates: list[Recipe], folds: int = 5,
                   imagenet_path: Path | None = None, save=None, say=print) -> dict:
    """Everything the package and its card need: final network, temperature, guard, figures. `save(result)`
    is called once the final model exists (cross-validation pending) and again at the end."""
    started = time.perf_counter()
    data = DeviceData(pack, device)
    labels, classes = pack.labels, plan.dataset.classes
    halves = look_halves(labels, pack.groups, pack.looks)
    imagenet = {"lite0": imagenet_state("lite0", imagenet_path)}
    trunk = trunk_features(data, imagenet["lite0"])
    say(f"{plan.name}: {len(labels)} images; shifted halves {np.bincount(halves).tolist()}")
    ablation, best = [], None
    for recipe in candidates:
        imagenet.setdefault(recipe.variant, imagenet_state(recipe.variant, imagenet_path))
        say(f"  shifted validation, {recipe.variant} at {recipe.size} px")
        shifted = _shifted_classifier(data, halves, len(classes), recipe, imagenet[recipe.variant], trunk, say)
        temperature = metrics.fit_temperature(shifted["logits"], labels)
        tta_temperature = metrics.fit_temperature(shifted["mirrored"], labels)
        row = {"variant": recipe.variant, "size": recipe.size,
               "figures": fold_figures(shifted["logits"], labels, halves, classes, temperature),
               "with_mirror_tta": fold_figures(shifted["mirrored"], labels, halves, classes, tta_temperature),
               "temperature": temperature, "seconds": round(shifted["seconds"], 1)}
        row["score"] = plan.score(row["figures"])
        row["tta_score"] = plan.score(row["with_mirror_tta"])
        ablation.append(row)
        say(f"    {plan.score_name} {row['score']:.3f} (with mirror TTA {row['tta_score']:.3f})")
        if best is None or row["score"] > best[1]["score"]:
            best = (recipe, row, shifted)
    recipe, chosen, shifted = best
    temperature = chosen["temperature"]
    guard_check = _guard_check(shifted, labels, temperature)
    say(f"  chosen {recipe.variant} at {recipe.size} px; T = {temperature:.3f}; guard {guard_check}")
    say("  final model on every image")
    every = np.arange(len(labels))
    network = train_classifier(data, every, len(classes), recipe, imagenet[recipe.variant], say)
    guard = FeatureDistribution.fit(trunk)
    fold_of = stratified_group_folds(labels.tolist(), pack.groups.tolist(), folds, recipe.seed)
    result = {"network": network.float().cpu(), "recipe": recipe, "temperature": temperature, "guard": guard,
              "figures": {"expected_on_new_data": chosen["figures"], "cross_validated": "not run",
                          "ood_guard_on_shifted_validation": guard_check},
              "ablation": [{k: v for k, v in row.items() if k != "figures"} | {"figures": _short(row["figures"])}
                           for row in ablation],
              "shift": describe(pack.looks, halves), "folds": fold_of, "halves": halves,
              "seconds": time.perf_counter() - started, "device": _device_name(device)}
    if save:
        save(result)
    say(f"  {folds}-fold grouped cross-validation")
    logits = np.zeros((len(labels), len(classes)), np.float32)
    for fold in range(folds):
        train, held = np.nonzero(fold_of != fold)[0], np.nonzero(fold_of == fold)[0]
        model = train_classifier(data, train, len(classes), recipe, imagenet[recipe.variant], say)
        logits[held] = classifier_outputs(model, data, held, recipe.size)[0]
    result["figures"]["cross_validated"] = fold_figures(logits, labels, fold_of, classes, temperature)
    result["seconds"] = time.perf_counter() - started
    if save:
        save(result)
    return result


TRUNK_SIZE, TRUNK_LAST_BLOCK = 224, 14  # the shared ImageNet trunk the app's guards and routing read


def trunk_features(data: DeviceData, imagenet: dict[str, torch.Tensor]) -> np.ndarray:
    """(N, 192) pooled output of the ImageNet EfficientNet-Lite0 trunk (stem and stages 1-6, 224 px letterboxed)
    for every image: the features the shipped guards are fitted on, shared by every package."""
    from torch.nn import functional

    from app.inference.networks.efficientnet_lite import EfficientNetLite
    from app.training.finetune import _start

    network = EfficientNetLite("lite0", num_classes=1)
    _start(network, imagenet)
    network = network.to(data.device).eval()
    out = []
    with torch.inference_mode():
        for first in range(0, len(data.pack.labels), 256):
            x, _ = data.batch(np.arange(first, min(first + 256, len(data.pack.labels))), TRUNK_SIZE, None)
            x = functional.relu6(network._bn0(network._conv_stem(x.contiguous())))
            for block in network._blocks[:TRUNK_LAST_BLOCK + 1]:
                x = block(x)
            out.append(x.float().mean((2, 3)).cpu())
    return torch.cat(out).numpy().astype(np.float64)


def _shifted_classifier(data: DeviceData, halves: np.ndarray, classes: int, recipe: Recipe, imagenet, trunk,
                        say) -> dict:
    started = time.perf_counter()
    logits = np.zeros((len(halves), classes), np.float32)
    mirrored = np.zeros_like(logits)
    distance, limit = np.zeros(len(halves)), np.zeros(len(halves))
    trunk_distance, trunk_limit = np.zeros(len(halves)), np.zeros(len(halves))
    for half in (0, 1):
        train, held = np.nonzero(halves != half)[0], np.nonzero(halves == half)[0]
        model = train_classifier(data, train, classes, recipe, imagenet, say)
        _, _, seen = classifier_outputs(model, data, train, recipe.size)
        logits[held], mirrored[held], pooled = classifier_outputs(model, data, held, recipe.size, mirror_too=True)
        guard = FeatureDistribution.fit(seen)
        distance[held], limit[held] = guard.distance(pooled), guard.limit
        guard = FeatureDistribution.fit(trunk[train])
        trunk_distance[held], trunk_limit[held] = guard.distance(trunk[held]), guard.limit
    return {"logits": logits, "mirrored": mirrored, "seconds": time.perf_counter() - started,
            "guards": {"shared ImageNet trunk (shipped)": (trunk_distance, trunk_limit),
                       "the fine-tuned network's own stage 6": (distance, limit)}}


def _guard_check(shifted: dict, labels: np.ndarray, temperature: float) -> dict:
    """How often each guard (fitted on the training half) flags the held half's images the model got right,
    and those it got wrong; the first is the shipped one."""
    probabilities = metrics.softmax(shifted["logits"], temperature)
    correct = probabilities.argmax(1) == labels
    confident_wrong = ~correct & (probabilities.max(1) >= 0.8)
    out = {"correct": int(correct.sum()), "wrong": int((~correct).sum())}
    for name, (distance, limit) in shifted["guards"].items():
        flagged = distance > limit
        rate = lambda chosen: round(float(flagged[chosen].mean()), 4) if chosen.any() else None  # noqa: E731
        out[name] = {"flagged_when_correct": rate(correct), "flagged_when_wrong": rate(~correct),
                     "flagged_when_wrong_with_p_over_0.8": rate(confident_wrong)}
    return out


def _short(figures: dict) -> dict:
    return {k: figures[k] for k in ("macro_f1", "accuracy", "ece")} | {
        "recall": figures["pooled"]["recall"]}


def run_segmenter(pack: ImagePack, device: torch.device, candidates: list[Recipe], imagenet_path: Path | None = None,
                  say=print) -> dict:
    """Held-out fifth and shifted halves: Dice on lesion images, empty-mask rate on normal images. With several
    candidate recipes (EfficientNet-Lite sizes), the one with the best Dice on the shifted halves is kept."""
    started = time.perf_counter()
    data = DeviceData(pack, device)
    labels = pack.labels
    trunk = trunk_features(data, imagenet_state("lite0", imagenet_path))
    fold_of = stratified_group_folds(labels.tolist(), pack.groups.tolist(), 5, 0)
    halves = look_halves(labels, pack.groups, pack.looks)
    tried = []
    for recipe in candidates:
        say(f"  U-Net on {recipe.variant} at {recipe.size} px")
        imagenet = imagenet_state(recipe.variant, imagenet_path)
        figures, network = {}, None
        for name, split, parts in (("held_out_fifth", fold_of, (0,)), ("shifted_halves", halves, (0, 1))):
            say(f"  {name}")
            per_part = []
            for part in parts:
                train, held = np.nonzero(split != part)[0], np.nonzero(split == part)[0]
                model = train_segmenter(data, train, recipe, imagenet, say)
                maps, targets, _ = segmenter_outputs(model, data, held, recipe.size)
                mirrored, _, _ = segmenter_outputs(model, data, held, recipe.size, mirror=True)
                per_part.append((maps, targets, labels[held], mirrored))
                if network is None:  # the held-out fifth's model is the shipped one
                    network = model
            figures[name] = segmentation_figures(*[np.concatenate(v) for v in zip(*per_part)])
            say(f"    {figures[name]}")
        tried.append((figures["shifted_halves"]["any_mask"]["dice"]["mean"], recipe, figures, network))
    dice, recipe, figures, network = max(tried, key=lambda t: t[0])
    train = np.nonzero(fold_of != 0)[0]
    result = {"network": network.float().cpu(), "recipe": recipe, "guard": FeatureDistribution.fit(trunk[train]),
              "figures": figures, "folds": fold_of, "halves": halves, "shift": describe(pack.looks, halves),
              "seconds": time.perf_counter() - started, "device": _device_name(device)}
    if len(tried) > 1:
        result["ablation"] = [{"variant": r.variant, "size": r.size, "shifted_dice": d} for d, r, _, _ in tried]
    return result


def segmentation_figures(maps: np.ndarray, targets: np.ndarray, labels: np.ndarray, mirrored: np.ndarray | None = None,
                         threshold: float = 0.5) -> dict:
    """Dice and IoU on lesion images, and the share of normal images left without any mask; also with a
    mask smaller than 0.5% of the image counted as none (a rule the app could apply), and, given the maps of
    the mirrored images, for the mean of both maps (the package's `mirror_average`)."""
    rules = [("any_mask", maps, 0.0), ("masks_under_0.5_percent_dropped", maps, 0.005)]
    if mirrored is not None:
        rules.append(("mirror_average", (maps.astype(np.float32) + mirrored.astype(np.float32)) / 2, 0.0))
    out = {}
    for rule, chosen, min_share in rules:
        dice, iou, empty_on_normal = [], [], []
        for probability, truth, label in zip(chosen, targets, labels):
            predicted = probability.astype(np.float32) >= threshold
            if predicted.mean() < min_share:
                predicted[:] = False
            if label == 0:
                empty_on_normal.append(not predicted.any())
            elif truth.any():
                d, i = metrics.dice_and_iou(predicted, truth)
                dice.append(d)
                iou.append(i)
        out[rule] = {"lesion_images": len(dice),
                     "dice": {"mean": round(float(np.mean(dice)), 4), "sd": round(float(np.std(dice, ddof=1)), 4)},
                     "iou": {"mean": round(float(np.mean(iou)), 4), "sd": round(float(np.std(iou, ddof=1)), 4)},
                     "normal_images": len(empty_on_normal),
                     "normal_images_without_mask": round(float(np.mean(empty_on_normal)), 4)
                     if empty_on_normal else None}
    return out


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} threads"


def save_run(result: dict, folder: Path) -> None:
    """The run's outputs as files (weights in half precision): what a GPU machine sends back."""
    from app.inference.weights import write_safetensors

    folder.mkdir(parents=True, exist_ok=True)
    write_safetensors({k: (v.half() if v.is_floating_point() else v)
                       for k, v in result["network"].state_dict().items()}, folder / "weights.safetensors")
    result["guard"].save(folder / "ood.safetensors")
    facts = {k: v for k, v in result.items() if k not in ("network", "guard")}
    facts["recipe"] = replace(result["recipe"]).described()
    facts["folds"], facts["halves"] = result["folds"].tolist(), result["halves"].tolist()
    (folder / "run.json").write_text(json.dumps(facts, indent=1, default=_plain) + "\n", encoding="utf-8")


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(type(value))
