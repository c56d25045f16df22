"""The fifth of BUSI the shipped us-breast-seg never saw, and the paired interval its benchmarks report.

The shipped U-Net was trained on four fifths of BUSI (stratified by class, near-duplicates grouped, seed 0);
fold HELD_FOLD is the one set here it never saw. seg_mirror.py and seg_gate.py measure on it.
"""

from __future__ import annotations

import numpy as np

from app.training.datasets import BUSI, SHARED_DATASETS, list_samples
from app.training.splits import stratified_group_folds

HELD_FOLD = 0


def busi_folds() -> tuple[list, np.ndarray] | None:
    """BUSI's samples and the fold of each (None when ../shared is not here)."""
    if not (SHARED_DATASETS / BUSI.root).is_dir():
        print(f"{SHARED_DATASETS / BUSI.root} is not here; nothing to measure")
        return None
    samples = list_samples(BUSI)
    return samples, stratified_group_folds([s.label for s in samples], [s.group for s in samples], 5, 0)


def paired_interval(difference: np.ndarray) -> tuple[float, float]:
    """95% bootstrap interval of the mean of per-image paired differences (5000 resamples, seed 0)."""
    rng = np.random.default_rng(0)
    boots = [difference[rng.integers(0, len(difference), len(difference))].mean() for _ in range(5000)]
    low, high = np.percentile(boots, [2.5, 97.5])
    return float(low), float(high)
