"""Stratified, grouped k-fold splits: every group in one fold, class shares alike in every fold."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np


def stratified_group_folds(labels: list[int], groups: list[str], folds: int, seed: int) -> np.ndarray:
    """Fold number per sample. Groups go, largest first (random order among equals), to the fold that
    holds the fewest samples of the group's majority class."""
    members: dict[str, list[int]] = defaultdict(list)
    for index, group in enumerate(groups):
        members[group].append(index)
    rng = np.random.default_rng(seed)
    names = list(members)
    rng.shuffle(names)
    names.sort(key=lambda g: -len(members[g]))
    classes = max(labels) + 1
    counts = np.zeros((folds, classes), int)
    fold_of = np.empty(len(labels), int)
    for group in names:
        label = Counter(labels[i] for i in members[group]).most_common(1)[0][0]
        fold = int(np.lexsort((counts.sum(1), counts[:, label]))[0])
        for i in members[group]:
            fold_of[i] = fold
            counts[fold, labels[i]] += 1
    return fold_of
