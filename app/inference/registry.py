"""Which model packages are installed, and which model fits which image."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from platformdirs import user_data_dir

from app.inference.manifest import MANIFEST_NAME, ModelManifest, ModelNotFoundError, ModelPackageError, read_manifest
from app.paths import install_root


def user_models_dir() -> Path:
    """Where imported models go: the user's data folder, writable without admin rights."""
    return Path(user_data_dir("RadLens", appauthor=False)) / "models"


MODEL_PATH_VARIABLE = "RADLENS_MODEL_PATH"


def model_dirs() -> list[Path]:
    """Folders searched for packages, first match wins: $RADLENS_MODEL_PATH (e.g. a site-wide share,
    separated like PATH), the models shipped with RadLens, then the user's imported models."""
    extra = [Path(p) for p in os.environ.get(MODEL_PATH_VARIABLE, "").split(os.pathsep) if p]
    return [*extra, install_root() / "models", user_models_dir()]


@dataclass
class ModelRegistry:
    models: list[ModelManifest] = field(default_factory=list)
    problems: list[ModelPackageError] = field(default_factory=list)

    @classmethod
    def discover(cls, dirs: list[Path] | None = None) -> ModelRegistry:
        registry = cls()
        for root in dirs if dirs is not None else model_dirs():
            if not root.is_dir():
                continue
            for folder in sorted(p for p in root.iterdir() if (p / MANIFEST_NAME).is_file()):
                try:
                    registry.models.append(read_manifest(folder))
                except ModelPackageError as error:
                    registry.problems.append(error)
        registry.models = [registry._with_lesion_mask_model(m) for m in registry.models]
        return registry

    def _with_lesion_mask_model(self, manifest: ModelManifest) -> ModelManifest:
        """A classifier with settings.lesion_mask, holding the installed segmentation package it names."""
        name = manifest.lesion_mask.get("model")
        found = next((m for m in self.models if m.name == name and m.task == "segmentation"), None)
        return replace(manifest, lesion_mask_model=found) if name else manifest

    def get(self, name: str) -> ModelManifest:
        for model in self.models:
            if model.name == name or model.key == name:
                return model
        known = ", ".join(m.name for m in self.models) or "none installed"
        raise ModelNotFoundError(f"model {name!r}", f"not installed (installed: {known})")

    def for_modality(self, modality: str) -> list[ModelManifest]:
        return [m for m in self.models if m.matches(modality)]

    def default_for_image(self, info) -> ModelManifest | None:
        """The default model for an image (`ImageInfo`): a mammogram without a Modality (named as a view)
        gets the MG model."""
        return self.default_for("MG" if info.is_mammogram else info.modality)

    def default_for(self, modality: str) -> ModelManifest | None:
        """The first model for the image's modality; None when the user must choose (e.g. PNG)."""
        matches = self.for_modality(modality) if modality else []
        return matches[0] if matches else None
