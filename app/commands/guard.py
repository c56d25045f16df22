"""`radlens models guard NAME FOLDER`: fit a package's out-of-distribution guard on the shared trunk.

Routing (app/inference/routing.py) sends an image without a modality to the model whose guard says it
resembles that model's training images. A package without a guard (a GLAM package, an imported
checkpoint) is never chosen that way; this command gives it one, fitted on the pooled shared-trunk
features of the images in FOLDER (its training images), and records it in the package's model.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from app.core.text import printable
from app.inference.manifest import MANIFEST_NAME, ModelManifest, ModelPackageError, read_manifest
from app.inference.ood import FeatureDistribution
from app.inference.trunk import TRUNK_INPUT, TRUNK_NAME, load_trunk, pooled_layers
from app.io.errors import LoadProblem
from app.io.study_loader import decode_series, scan

GUARD_LAYER = "_blocks.14"  # the last frozen block (stage 6, 1/32): what the shipped guards read
GUARD_FILE = "ood.safetensors"


def trunk_features(images, layer: str = GUARD_LAYER, progress=None) -> np.ndarray:
    """(N, C) pooled shared-trunk features of decoded images (an iterable of LoadedImage)."""
    trunk, rows = load_trunk(), []
    images = list(images)
    for done, image in enumerate(images, start=1):
        rows.append(pooled_layers(trunk, {layer}, image, 0, TRUNK_INPUT)[layer][0])
        if progress:
            progress(done, len(images))
    return np.stack(rows)


def fit_guard(manifest: ModelManifest, source: Path, progress=None) -> tuple[ModelManifest, list[LoadProblem]]:
    """Fit and install the guard of the package `manifest` on every readable image under `source`."""
    found = scan([source])
    problems, images = list(found.problems), []
    for series in (s for study in found.studies for s in study.series):
        image, trouble = decode_series(series)
        problems += trouble
        if image is not None:
            images.append(image)
    if len(images) < 20:
        raise ModelPackageError(source, f"{len(images)} readable image(s); a guard needs at least 20 of the "
                                        "model's training images")
    guard = FeatureDistribution.fit(trunk_features(images, progress=progress))
    sha256 = guard.save(manifest.folder / GUARD_FILE)
    path = manifest.folder / MANIFEST_NAME
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["ood"] = {"file": GUARD_FILE, "sha256": sha256, "layer": GUARD_LAYER, "trunk": TRUNK_NAME}
    raw.setdefault("card", {})["out_of_distribution_guard"] = (
        f"pooled shared ImageNet-trunk features ({GUARD_LAYER}) of {len(images)} training images "
        f"({printable(source.name)}), {guard.axes.shape[0]} principal axes; an image further than 99.5% of "
        "held-out training images (5-fold) is flagged: 'the result may not apply'")
    path.write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
    return read_manifest(manifest.folder), problems
