"""A validation that imitates a new site: train on images of one acquisition look, test on the other.

Public data sets publish no site or device, so the look stands in for it: the first principal component of
each image's acquisition figures (size, aspect, brightness, contrast, dark share, sharpness), averaged
over its group. Within each class, groups sorted by that score are cut in two halves; a model trained on
one half is tested on the other, both ways. Every group stays whole, so near-duplicates and one patient's
images never straddle the cut.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from app.training.imagepack import LOOK_FIGURES

LOG_FIGURES = ("height", "width", "aspect", "sharpness")


def look_scores(looks: np.ndarray) -> np.ndarray:
    """One number per image: where it lies on the main axis of acquisition variation."""
    values = np.asarray(looks, np.float64).copy()
    for name in LOG_FIGURES:
        column = LOOK_FIGURES.index(name)
        values[:, column] = np.log(np.maximum(values[:, column], 1e-6))
    spread = values.std(0)
    constant = spread <= 1e-9 * (1 + np.abs(values.mean(0)))  # rounding noise must not become a direction
    standard = np.where(constant, 0.0, (values - values.mean(0)) / np.where(constant, 1, spread))
    _, _, axes = np.linalg.svd(standard, full_matrices=False)
    axis = axes[0] * np.sign(axes[0][np.argmax(np.abs(axes[0]))])  # a fixed sign, so the halves are stable
    return standard @ axis


def look_halves(labels: np.ndarray, groups: np.ndarray, looks: np.ndarray) -> np.ndarray:
    """0 or 1 per image: the half of its class's groups (sorted by look) it falls in."""
    scores = look_scores(looks)
    half = np.zeros(len(labels), int)
    for label in np.unique(labels):
        members: dict[str, list[int]] = defaultdict(list)
        for index in np.nonzero(labels == label)[0]:
            members[str(groups[index])].append(int(index))
        ordered = sorted(members.values(), key=lambda m: (float(scores[m].mean()), m[0]))
        total, seen = sum(len(m) for m in ordered), 0
        for member in ordered:
            half[member] = 0 if seen < total / 2 else 1
            seen += len(member)
    # a group holding several classes follows its first image, so no group straddles the cut
    first: dict[str, int] = {}
    for index, group in enumerate(groups):
        half[index] = first.setdefault(str(group), half[index])
    return half


def describe(looks: np.ndarray, halves: np.ndarray) -> dict:
    """How the two halves differ, in the figures a reader would recognise."""
    out = {}
    for name in ("height", "width", "mean", "std", "sharpness"):
        column = looks[:, LOOK_FIGURES.index(name)]
        out[name] = [round(float(np.median(column[halves == h])), 3) for h in (0, 1)]
    return {"median per half (first, second)": out}
