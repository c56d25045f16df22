"""GLAM exam lists (the reference's pickle of plain lists and dicts): labels per image."""

from __future__ import annotations

import pickle
from pathlib import Path

VIEWS = ("L-CC", "R-CC", "L-MLO", "R-MLO")


class _PlainUnpickler(pickle.Unpickler):
    """Reads only built-in containers and values: a pickle that names any class or function is refused
    before anything of it runs."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"it refers to {module}.{name}; an exam list holds only lists and dicts")


def read_exam_labels(path: Path) -> dict[str, tuple[int, int]]:
    """image index (e.g. '0_L-CC') -> (benign_label, malignant_label) of that image's breast."""
    try:
        with open(path, "rb") as handle:
            exams = _PlainUnpickler(handle).load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as error:
        raise ValueError(f"cannot read the exam list {path}: {error}") from error
    if not isinstance(exams, list):
        raise ValueError(f"the exam list {path} is not a list of exams")
    labels: dict[str, tuple[int, int]] = {}
    for exam in exams:
        cancer = exam.get("cancer_label", {}) if isinstance(exam, dict) else {}
        for view in VIEWS:
            side = "left" if view.startswith("L") else "right"
            for index in exam.get(view, []) if isinstance(exam, dict) else []:
                labels[str(index)] = (int(cancer.get(f"{side}_benign", 0)), int(cancer.get(f"{side}_malignant", 0)))
    return labels
