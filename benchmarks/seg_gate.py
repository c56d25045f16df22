"""A lesion mask gated by the ultrasound classifier, measured on the held-out fifth of BUSI the shipped
us-breast-seg never saw.

The gate: the mask is shown only when the classifier does not call the image normal (its most probable
class is benign or malignant). The rule is fixed before measuring; nothing here is tuned on the fifth.
The shipped us-breast-cls saw every BUSI image, so it cannot be judged on the fifth: a classifier with the
shipped recipe (the card's) is trained here on the same four fifths the shipped U-Net was trained on
(about 25 min on 2 CPU cores; kept in the user cache, so a rerun measures at once) and packaged with the
shipped card's temperature and lesion-mask setting. Both run through the app's own InferenceEngine on each
decoded image, as the window runs them: the gate measured is the app's code, not a copy of it.
Figures: Dice on lesion images (a lesion image whose mask the gate hides counts as Dice 0), the share of
normal images left without a mask, with and without the gate, and the paired difference with a 95%
bootstrap interval. Target (issue 16): Dice >= 0.78, no mask on >= 90% of normal images.
Usage: python benchmarks/seg_gate.py [--retrain]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from platformdirs import user_cache_dir  # noqa: E402

from app.inference.networks.efficientnet_lite import EfficientNetLite  # noqa: E402
from app.inference.options import ExplainOptions  # noqa: E402
from app.inference.package_writer import write_model_package  # noqa: E402
from app.inference.registry import ModelRegistry  # noqa: E402
from app.inference.runner import InferenceEngine  # noqa: E402
from app.io.study_loader import decode_image, read_info  # noqa: E402
from app.training import metrics  # noqa: E402
from app.training.cnn_command import make_pack  # noqa: E402
from app.training.finetune import DeviceData, imagenet_state, train_classifier  # noqa: E402
from app.training.imagepack import mask_union  # noqa: E402
from app.training.recipes import PLANS  # noqa: E402
from benchmarks.busi_fifth import HELD_FOLD, busi_folds, paired_interval  # noqa: E402

SEGMENTER, CLASSIFIER = "us-breast-seg", "us-breast-cls"
FOLD_MODEL = f"{CLASSIFIER}-fold{HELD_FOLD}"
CACHE = Path(user_cache_dir("RadLens", appauthor=False)) / "training"


def fold_package(fold_of: np.ndarray, retrain: bool) -> Path:
    """A package of the shipped us-breast-cls (same recipe, temperature and lesion-mask setting) whose weights
    were trained on the four fifths the shipped U-Net saw; the app reads it as it reads the shipped one."""
    shipped = ModelRegistry.discover([ROOT / "models"]).get(CLASSIFIER)
    plan = PLANS[CLASSIFIER]
    recipe = next(r for r in plan.candidates if r.size == shipped.input.size[0])
    weights = CACHE / f"seg-gate-{CLASSIFIER}-{recipe.variant}-{recipe.size}px-{recipe.epochs}ep-fold{HELD_FOLD}.pt"
    network = EfficientNetLite(recipe.variant, num_classes=len(plan.dataset.classes))
    if weights.is_file() and not retrain:
        network.load_state_dict(torch.load(weights, weights_only=True))
    else:
        started = time.perf_counter()
        data = DeviceData(make_pack(CLASSIFIER, CACHE / "packs"), torch.device("cpu"))
        print(f"training {CLASSIFIER}'s recipe ({recipe.variant}, {recipe.size} px, {recipe.epochs} epochs) on "
              f"{int((fold_of != HELD_FOLD).sum())} images")
        network = train_classifier(data, np.nonzero(fold_of != HELD_FOLD)[0], len(plan.dataset.classes), recipe,
                                   imagenet_state(recipe.variant))
        weights.parent.mkdir(parents=True, exist_ok=True)
        torch.save(network.state_dict(), weights)
        print(f"  trained in {(time.perf_counter() - started) / 60:.1f} min; kept in {weights}")
    raw = json.loads((shipped.folder / "model.json").read_text(encoding="utf-8"))
    manifest = {key: value for key, value in raw.items() if key not in ("weights", "ood", "card")}
    folder = CACHE / "seg-gate-packages" / FOLD_MODEL
    write_model_package(folder, network.float().eval(), {**manifest, "name": FOLD_MODEL})
    return folder.parent


def wilson(hits: int, n: int) -> tuple[float, float]:
    """95% Wilson interval of a proportion: honest for a share measured on 22 normal images."""
    z, share = 1.96, hits / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retrain", action="store_true", help="train the fold's classifier again")
    args = parser.parse_args()
    folds = busi_folds()
    if folds is None:
        return 1
    samples, fold_of = folds
    registry = ModelRegistry.discover([fold_package(fold_of, args.retrain), ROOT / "models"])
    classifier, segmenter = registry.get(FOLD_MODEL), registry.get(SEGMENTER)
    assert classifier.lesion_mask_model == segmenter
    held = [s for s, fold in zip(samples, fold_of) if fold == HELD_FOLD]
    engine = InferenceEngine("cpu")
    rows = []
    for sample in held:
        image = decode_image(read_info(sample.image))
        alone = engine.run(segmenter, image)
        read = engine.run(classifier, image, options=ExplainOptions(layers=()))  # as the window runs it
        mask = alone.mask >= alone.threshold
        truth = mask_union(sample, image.frames.shape[1:3]) > 0
        gated = read.mask is None  # the classifier called it normal: no mask shown
        assert gated or np.array_equal(read.mask >= read.threshold, mask)
        dice = metrics.dice_and_iou(mask, truth)[0] if sample.label != 0 and truth.any() else None
        rows.append({"label": sample.label, "p": read.probabilities.tolist(), "has_mask": bool(mask.any()),
                     "gated": gated, "dice": dice})
    lesion = [r for r in rows if r["dice"] is not None]
    normal = [r for r in rows if r["label"] == 0]
    plain = np.array([r["dice"] for r in lesion])
    gate = np.array([0.0 if r["gated"] else r["dice"] for r in lesion])
    print(f"{SEGMENTER} {segmenter.version} on its held-out fifth ({len(held)} images), gated by a {CLASSIFIER} "
          f"trained on the other four fifths")
    accuracy = np.mean([int(np.argmax(r["p"])) == r["label"] for r in rows])
    print(f"  classifier on the fifth: accuracy {accuracy:.3f}; normal recall "
          f"{np.mean([r['gated'] for r in normal]):.3f}; lesion images called normal "
          f"{sum(r['gated'] for r in lesion)} of {len(lesion)}")
    for name, dice, empty in (("mask alone", plain, [not r["has_mask"] for r in normal]),
                              ("gated mask", gate, [r["gated"] or not r["has_mask"] for r in normal])):
        low, high = wilson(int(sum(empty)), len(empty))
        print(f"  {name:11s} Dice {dice.mean():.3f} +/- {dice.std(ddof=1):.3f} on {len(dice)} lesion images; "
              f"{int(sum(empty))} of {len(empty)} normal images ({np.mean(empty):.0%}, 95% {low:.0%} to {high:.0%}) "
              "without a mask")
    difference = gate - plain
    low, high = paired_interval(difference)
    print(f"  paired Dice difference (gated - alone) {difference.mean():+.4f}, 95% bootstrap {low:+.4f} to {high:+.4f}")
    out = CACHE / "seg-gate-rows.json"
    out.write_text(json.dumps(rows) + "\n", encoding="utf-8")
    print(f"  per-image rows in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
