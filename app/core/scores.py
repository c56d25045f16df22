"""Scores as mammography CAD products report them: per view, per breast (max of its views), per exam."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ExamScores:
    classes: tuple[str, ...]
    views: dict[str, np.ndarray]  # "R CC" -> per-class scores
    breasts: dict[str, np.ndarray]  # "R" / "L" -> max over that breast's views
    exam: np.ndarray  # max over both breasts


def exam_scores(classes: tuple[str, ...], per_view: dict[str, np.ndarray]) -> ExamScores:
    """`per_view` maps a view label such as "L MLO" to its per-class scores."""
    if not per_view:
        raise ValueError("no view scores to combine")
    breasts: dict[str, np.ndarray] = {}
    for label, scores in per_view.items():
        side = label.split()[0] if label[:1] in "RL" else "?"
        breasts[side] = np.maximum(breasts[side], scores) if side in breasts else np.asarray(scores, float)
    exam = np.max(np.stack(list(breasts.values())), axis=0)
    return ExamScores(classes=classes, views=dict(per_view), breasts=breasts, exam=exam)
