"""What each shipped model is: its data, classes, modality and targets (the issue's figures)."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.training.classify import Recipe
from app.training.datasets import BRAIN, BUSI, CHEST, DatasetSpec


@dataclass(frozen=True)
class ModelPlan:
    name: str
    modality: tuple[str, ...]
    dataset: DatasetSpec
    summary: str
    targets: dict[str, float] = field(default_factory=dict)
    recipe: Recipe = Recipe()


PLANS = {
    "us-breast-cls": ModelPlan("us-breast-cls", ("US",), BUSI,
                               "Breast ultrasound: normal / benign / malignant",
                               {"mean recall of benign and malignant": 0.88, "macro_f1": 0.85, "ece": 0.05}),
    "mr-brain-cls": ModelPlan("mr-brain-cls", ("MR",), BRAIN,
                              "Brain MRI (T1 contrast slices): glioma / meningioma / no tumour / pituitary",
                              {"macro_f1": 0.85, "ece": 0.05}, Recipe(epochs=10)),
    "cr-chest-cls": ModelPlan("cr-chest-cls", ("CR", "DX"), CHEST,
                              "Paediatric chest radiograph: normal / pneumonia",
                              {"accuracy": 0.92, "pneumonia recall": 0.95, "ece": 0.05}),
}
