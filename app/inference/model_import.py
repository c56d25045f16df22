"""`radlens models import PATH` and File > Import model...: a package folder, or an official GLAM checkpoint."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch

from app.inference.manifest import MANIFEST_NAME, ModelManifest, ModelPackageError, read_manifest
from app.inference.registry import user_models_dir

CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pth")


def import_model(path: Path, models_dir: Path | None = None) -> ModelManifest:
    """Check `path` fully (manifest, hash, every weight) and install it for this user; a package of the
    same name is replaced only once the new one has passed every check."""
    path = Path(path)
    models_dir = Path(models_dir) if models_dir is not None else user_models_dir()
    if path.name == MANIFEST_NAME:
        path = path.parent
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=models_dir, prefix=".importing-") as staging:
        staged = _stage(path, Path(staging))
        target = models_dir / staged.folder.name
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(staged.folder), target)
    return read_manifest(target)


def _stage(path: Path, staging: Path) -> ModelManifest:
    if path.is_dir():
        manifest = read_manifest(path)  # says what is wrong with model.json
        _check_weights(manifest)
        shutil.copytree(path, staging / manifest.name)
        return read_manifest(staging / manifest.name)
    if path.suffix.lower() in CHECKPOINT_SUFFIXES:
        from app.inference.glam.checkpoint import import_checkpoint

        return import_checkpoint(path, staging)
    if not path.exists():
        raise ModelPackageError(path, "no such file or folder")
    raise ModelPackageError(path, "not a model package folder (with model.json) nor a GLAM checkpoint "
                                  f"({', '.join(CHECKPOINT_SUFFIXES)})")


def _check_weights(manifest: ModelManifest) -> None:
    from app.inference.runner import InferenceEngine

    InferenceEngine("cpu").network(manifest, torch.device("cpu"))
