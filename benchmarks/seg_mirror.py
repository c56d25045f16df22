"""Test-time mirroring of the shipped us-breast-seg, measured on its held-out fifth of BUSI.

On the fifth of BUSI the shipped U-Net never saw (busi_fifth.py), each held-out image goes through the app's own
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
from app.training.imagepack import mask_union  # noqa: E402
from benchmarks.busi_fifth import HELD_FOLD, busi_folds, paired_interval  # noqa: E402

MODEL = "us-breast-seg"


def main() -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    folds = busi_folds()
    if folds is None:
        return 1
    shipped = ModelRegistry.discover([ROOT / "models"]).get(MODEL)
    ways = {"plain": replace(shipped, settings={**shipped.settings, "mirror_average": False}),
            "mirror_average": replace(shipped, settings={**shipped.settings, "mirror_average": True})}
    held = [s for s, fold in zip(*folds) if fold == HELD_FOLD]
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
    low, high = paired_interval(difference)
    print(f"  paired Dice difference (mirror average - plain) {difference.mean():+.4f}, 95% bootstrap "
          f"{low:+.4f} to {high:+.4f}; {int((difference > 0.005).sum())} images better, "
          f"{int((difference < -0.005).sum())} worse")
    gained = sum(m and not p for m, p in zip(empty["mirror_average"], empty["plain"]))
    lost = sum(p and not m for m, p in zip(empty["mirror_average"], empty["plain"]))
    print(f"  normal images: {gained} more without a mask, {lost} fewer")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
