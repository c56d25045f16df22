"""Small model packages with random weights, for testing behaviour (never accuracy)."""

from __future__ import annotations

from pathlib import Path

import torch

from app.inference.manifest import ModelManifest
from app.inference.networks import build_network
from app.inference.package_writer import write_model_package

INPUT_SIZE = 64


def make_package(root: Path, name: str = "test-cls", *, task: str = "classification", modality="US",
                 classes=("normal", "benign", "malignant"), seed: int = 0, size: int = INPUT_SIZE,
                 channels: int = 3, settings: dict | None = None) -> ModelManifest:
    torch.manual_seed(seed)
    if task == "segmentation":
        spec = {"type": "efficientnet-lite-unet", "variant": "lite0", "in_channels": channels}
        classes = ("lesion",)
    else:
        spec = {"type": "efficientnet-lite", "variant": "lite0", "num_classes": len(classes),
                "in_channels": channels}
    network = build_network(spec)
    layers = network.explainable_layers() if task == "classification" else {}
    manifest = {
        "name": name, "version": "0.0.1", "modality": modality, "task": task, "classes": list(classes),
        "network": spec,
        "input": {"size": [size, size], "channels": channels, "resize": "letterbox",
                  "normalization": {"mean": [0.5] * channels, "std": [0.5] * channels}},
        "explain": {"layers": layers, "default": "head (1/32)" if layers else ""},
        "half_precision": True,
        "settings": settings or {},
        "licence": {"weights": "test only"},
        "card": {"summary": "random weights made by the tests"},
    }
    return write_model_package(Path(root) / name, network, manifest)


def make_glam_package(root: Path, name: str = "test-glam", *, seed: int = 0, window=(256, 160), patch: int = 64,
                      modality="MG") -> ModelManifest:
    """A GLAM package with random weights and small sizes (the networks are the official ones)."""
    from app.inference.glam.crop import CropSettings
    from app.inference.glam.networks import GlamNetwork
    from app.inference.glam.pipeline import GlamSettings

    torch.manual_seed(seed)
    settings = GlamSettings(window=tuple(window), patch=patch, crop=CropSettings(erode_iterations=4, buffer=4))
    manifest = {
        "name": name, "version": "0.0.1", "modality": modality, "task": "glam", "classes": ["benign", "malignant"],
        "network": {"type": "glam"},
        "input": {"size": list(window), "channels": 1, "resize": "letterbox",
                  "normalization": {"mean": [0.0], "std": [1.0]}},
        "settings": {"glam": settings.to_dict()},
        "licence": {"weights": "test only"},
        "card": {"summary": "random weights made by the tests"},
    }
    return write_model_package(Path(root) / name, GlamNetwork().half(), manifest)
