"""What one training image costs on this CPU, and what a GPU run's work would take here.

`python benchmarks/train_cost.py [RUN_DIR ...]` times a few training steps (forward, backward, AdamW) of each
network and input size the recipes use, in seconds per image, and, for each run folder given (a
`radlens train --run-only` result with its `trained_images` counts), the estimated wall time of that run on
this machine. Reported: the seconds per image and the estimated hours, with the CPU's load while measuring.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.training.augment import RADIOGRAPH  # noqa: E402
from app.training.finetune import TRAINED, DeviceData, Recipe, imagenet_state, train_classifier, train_segmenter  # noqa: E402
from app.training.imagepack import LOOK_FIGURES, ImagePack  # noqa: E402

SETUPS = {"lite0 classifier at 224 px": ("classifier", 224, 32), "lite0 classifier at 320 px": ("classifier", 320, 32),
          "lite0 U-Net at 320 px": ("segmenter", 320, 16)}


def _pack(size: int, n: int) -> ImagePack:
    rng = np.random.default_rng(0)
    looks = np.zeros((n, len(LOOK_FIGURES)), np.float32)
    looks[:, :2] = size
    return ImagePack(rng.integers(0, 255, (n, size, size), np.uint8), np.arange(n) % 2, np.array([str(i) for i in range(n)]),
                     np.array([f"{i}.png" for i in range(n)]), looks, rng.integers(0, 2, (n, size, size), np.uint8))


def seconds_per_image(kind: str, size: int, batch: int, steps: int = 3) -> float:
    data = DeviceData(_pack(size, batch * (steps + 1)), torch.device("cpu"))
    imagenet = imagenet_state("lite0")
    times = []
    for epochs in (1, steps + 1):  # the difference removes set-up costs
        recipe = Recipe(size=size, epochs=1, batch=batch, augmentation=RADIOGRAPH)
        indices = np.arange(batch * epochs)
        started = time.perf_counter()
        if kind == "classifier":
            train_classifier(data, indices, 2, recipe, imagenet, say=lambda *_: None)
        else:
            train_segmenter(data, indices, recipe, imagenet, say=lambda *_: None)
        times.append(time.perf_counter() - started)
    return (times[1] - times[0]) / (batch * steps)


def glam_lite_seconds_per_view(recipe_name: str, steps: int = 2) -> float:
    """mg-glam-lite's recipe (GPU_RECIPE end to end, CPU_RECIPE frozen trunks) on random 512 x 320 windows."""
    from dataclasses import replace

    from app.training.glam_lite import MiasTensors, cache_features, train
    from app.training.glam_lite_command import CPU_RECIPE, GPU_RECIPE, SETTINGS, imagenet_file, new_network

    recipe = {"end to end": GPU_RECIPE, "frozen trunks": CPU_RECIPE}[recipe_name]
    height, width = SETTINGS.window
    n, generator = recipe.batch * (steps + 1), torch.Generator().manual_seed(0)
    data = MiasTensors(torch.randn(n, 1, height, width, generator=generator), torch.ones(n, 1, height // 16, width // 16),
                       (torch.rand(n, 2, height // 4, width // 4, generator=generator) > 0.98).float(),
                       torch.ones(n, 2), (torch.rand(n, 2, generator=generator) > 0.5).float())
    imagenet, cpu = imagenet_file(), torch.device("cpu")
    times = []
    for epochs in (1, steps + 1):  # the first step's set-up cost cancels out
        views = np.arange(recipe.batch * epochs)
        network = new_network(imagenet, cpu)
        started = time.perf_counter()
        cache = cache_features(network, data.subset(views), 1, 0) if recipe.frozen_trunks else None
        train(network, data.subset(views), SETTINGS, replace(recipe, epochs=1), 0, cache=cache)
        times.append(time.perf_counter() - started)
    return (times[1] - times[0]) / (recipe.batch * steps)


GLAM_LITE_VIEWS = 274  # mini-MIAS; --all-folds trains five folds of ~219 views and the final network on all


def glam_lite_hours(seconds: float, epochs: int, batch: int) -> float:
    """A whole `radlens train mg-glam-lite --all-folds` at `seconds` per view pushed through a step."""
    per_fold = (GLAM_LITE_VIEWS * 4 // 5) // batch * batch
    return (5 * per_fold + GLAM_LITE_VIEWS // batch * batch) * epochs * seconds / 3600


def main() -> int:
    load = os.getloadavg()[0]
    cost = {name: seconds_per_image(*setup) for name, setup in SETUPS.items()}
    from app.training.glam_lite_command import CPU_RECIPE, GPU_RECIPE

    for name, recipe in (("end to end", GPU_RECIPE), ("frozen trunks", CPU_RECIPE)):
        seconds = glam_lite_seconds_per_view(name)
        print(f"  mg-glam-lite {name} ({recipe.epochs} epochs): {seconds * 1000:.0f} ms per training view; "
              f"--all-folds here about {glam_lite_hours(seconds, recipe.epochs, recipe.batch):.1f} h")
    TRAINED.clear()
    print(f"CPU: {os.cpu_count()} cores, torch {torch.get_num_threads()} threads, load average {load:.1f}")
    for name, seconds in cost.items():
        print(f"  {name}: {seconds * 1000:.0f} ms per training image")
    for folder in map(Path, sys.argv[1:]):
        run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        counts = run.get("trained_images", {})
        hours = sum(count * cost[name] for name, count in counts.items() if name in cost) / 3600
        print(f"{folder.name}: {sum(counts.values())} training images on {run['device']} in "
              f"{run['seconds'] / 60:.1f} min; here about {hours:.1f} h")
    return 0


if __name__ == "__main__":
    sys.exit(main())
