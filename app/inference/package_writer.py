"""Writing a model package: the network's weights as safetensors and a `model.json` that names their hash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from app.inference.manifest import MANIFEST_NAME, ModelManifest, read_manifest
from app.inference.weights import write_safetensors

WEIGHTS_NAME = "weights.safetensors"


def write_model_package(folder: Path, network: nn.Module, manifest: dict[str, Any]) -> ModelManifest:
    """`manifest` holds every model.json field but `weights`; returns the package as the app will read it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sha256 = write_safetensors(network.state_dict(), folder / WEIGHTS_NAME)
    body = {**manifest, "weights": {"file": WEIGHTS_NAME, "sha256": sha256}}
    (folder / MANIFEST_NAME).write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    return read_manifest(folder)
