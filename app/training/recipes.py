"""What each shipped CNN model is: its data, classes, modality, targets, candidate recipes and the figure
that chooses between them on the shifted validation."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from app.training.augment import MRI, RADIOGRAPH, ULTRASOUND
from app.training.datasets import BRAIN, BUSI, CHEST, DatasetSpec
from app.training.finetune import Recipe


def _mean_recall(*classes: str):
    return lambda figures: sum(figures["pooled"]["recall"][c] for c in classes) / len(classes)


@dataclass(frozen=True)
class ModelPlan:
    name: str
    modality: tuple[str, ...]
    dataset: DatasetSpec
    summary: str
    targets: dict[str, float]
    # compared on the shifted validation; the best one is shipped. The brain-MRI and chest images here are at
    # most 224 px, so a larger input would only upsample them: 320 px is a candidate for ultrasound alone.
    candidates: tuple[Recipe, ...]
    score_name: str
    score: object = field(compare=False)  # figures -> number, higher is better
    pack_size: int = 224  # the images' own size or the largest candidate's, whichever is smaller
    version: str = "2.0.0"
    settings: dict = field(default_factory=dict, compare=False)  # the package's settings besides the temperature


def _sizes(base: Recipe, *sizes: int) -> tuple[Recipe, ...]:
    return tuple(replace(base, size=size) for size in sizes)


PLANS = {
    "us-breast-cls": ModelPlan(
        "us-breast-cls", ("US",), BUSI, "Breast ultrasound: normal / benign / malignant",
        {"mean recall of benign and malignant": 0.88, "malignant recall": 0.85, "ece": 0.05},
        _sizes(Recipe(epochs=30, batch=32, augmentation=ULTRASOUND), 224, 320),
        "mean recall of benign and malignant", _mean_recall("benign", "malignant"), pack_size=320,
        # 2.1: its results carry us-breast-seg's lesion mask, withheld where it calls the image normal
        # (benchmarks/seg_gate.py measures that gate on the segmenter's held-out fifth)
        version="2.1.0", settings={"lesion_mask": {"model": "us-breast-seg", "not_when": ["normal"]}}),
    "mr-brain-cls": ModelPlan(
        "mr-brain-cls", ("MR",), BRAIN, "Brain MRI (T1 contrast slices): glioma / meningioma / no tumour / pituitary",
        {"macro_f1": 0.85, "every class recall": 0.70, "ece": 0.05},
        (Recipe(epochs=25, augmentation=MRI),),
        "macro-F1", lambda figures: figures["macro_f1"]["mean"]),
    "cr-chest-cls": ModelPlan(
        "cr-chest-cls", ("CR", "DX"), CHEST, "Paediatric chest radiograph: normal / pneumonia",
        {"accuracy": 0.92, "normal recall": 0.85, "pneumonia recall": 0.85, "ece": 0.05},
        (Recipe(epochs=25, augmentation=RADIOGRAPH),),
        "mean recall of normal and pneumonia", _mean_recall("normal", "pneumonia")),
}
SEGMENTATION = "us-breast-seg"
SEGMENTATION_RECIPE = Recipe(size=320, epochs=50, batch=16, learning_rate=2e-3, weight_decay=1e-4,
                             label_smoothing=0.0, balance_classes=False, augmentation=ULTRASOUND)
