"""Test-time mirroring of the shipped us-breast-seg, measured on its held-out fifth of BUSI.

The shipped U-Net was trained on four fifths of BUSI (stratified by class, near-duplicates grouped, seed 0);
its fifth (fold 1) is the one set here it never saw. Each held-out image goes through the app's own
InferenceEngine as the window runs it (the PNG as decoded, letterboxed to the network), once as shipped
without and once with the package's `mirror_average` (the mean of the maps of the image and of its mirror
image), and the mask at the package's threshold is compared with the union of BUSI's masks at the image's
own size: Dice on lesion images, the share of normal images left without a mask, and the paired Dice
difference with a 95% bootstrap interval.
Target (issue 16): Dice >= 0.78, no mask on >= 90% of normal images.
Usage: python benchmarks/seg_mirror.py
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from app.inference.registry import ModelRegistry  # noqa: E402
from app.inference.runner import InferenceEngine  # noqa: E402
from app.io.study_loader import decode_image, read_info  # noqa: E402
from app.training import metrics  # noqa: E402
from app.training.datasets import BUSI, list_samples  # noqa: E402
from app.training.imagepack import mask_union  # noqa: E402
from app.training.splits import stratified_group_folds  # noqa: E402

MODEL = "us-breast-seg"


def main() -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    if not (ROOT.parent / "shared" / "datasets" / "busi").is_dir():
        print("../shared/datasets/busi is not here; nothing to measure")
        return 1
    shipped = ModelRegistry.discover([ROOT / "models"]).get(MODEL)
    ways = {"plain": replace(shipped, settings={**shipped.settings, "mirror_average": False}),
            "mirror_average": replace(shipped, settings={**shipped.settings, "mirror_average": True})}
    samples = list_samples(BUSI)
    fold_of = stratified_group_folds([s.label for s in samples], [s.group for s in samples], 5, 0)
    held = [s for s, fold in zip(samples, fold_of) if fold == 0]
    engine = InferenceEngine("cpu")
    dice = {way: [] for way in ways}
    empty = {way: [] for way in ways}
    seconds = dict.fromkeys(ways, 0.0)
    for sample in held:
        image = decode_image(read_info(sample.image))
        truth = mask_union(sample, image.frames.shape[1:3]) > 0
        for way, manifest in ways.items():
            started = time.perf_counter()
            result = engine.run(manifest, image)
            seconds[way] += time.perf_counter() - started
            mask = result.mask >= result.threshold
            if sample.label == 0:
                empty[way].append(not mask.any())
            elif truth.any():
                dice[way].append(metrics.dice_and_iou(mask, truth)[0])
    print(f"{MODEL} {shipped.version} (shipped with mirror_average={shipped.settings.get('mirror_average', False)}), "
          f"held-out fifth: {len(held)} images, {torch.get_num_threads()} threads")
    for way in ways:
        values = np.array(dice[way])
        print(f"  {way:15s} Dice {values.mean():.3f} +/- {values.std(ddof=1):.3f} on {len(values)} lesion images; "
              f"{int(sum(empty[way]))} of {len(empty[way])} normal images ({np.mean(empty[way]):.0%}) without a mask; "
              f"{1000 * seconds[way] / len(held):.0f} ms per image")
    difference = np.array(dice["mirror_average"]) - np.array(dice["plain"])
    rng = np.random.default_rng(0)
    boots = [difference[rng.integers(0, len(difference), len(difference))].mean() for _ in range(5000)]
    low, high = np.percentile(boots, [2.5, 97.5])
    print(f"  paired Dice difference (mirror average - plain) {difference.mean():+.4f}, 95% bootstrap "
          f"{low:+.4f} to {high:+.4f}; {int((difference > 0.005).sum())} images better, "
          f"{int((difference < -0.005).sum())} worse")
    gained = sum(m and not p for m, p in zip(empty["mirror_average"], empty["plain"]))
    lost = sum(p and not m for m, p in zip(empty["mirror_average"], empty["plain"]))
    print(f"  normal images: {gained} more without a mask, {lost} fewer")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
