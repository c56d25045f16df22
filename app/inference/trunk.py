"""The shared trunk: ImageNet EfficientNet-Lite0 up to stage 6, on which one pass scores every guard.

The shipped packages freeze the stem and stages 1-6 at their ImageNet weights, so their guards' features
(the pooled output of a frozen block) are the same whichever package computes them. A guard whose layer
is fed only by tensors equal to the trunk's, or one that says `"trunk": "efficientnet-lite0-imagenet"`
in its manifest (fitted on the trunk itself, e.g. for a GLAM package whose own networks have no such
layer), is scored from one trunk pass per image.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import torch

from app.core.image import LoadedImage
from app.inference.manifest import InputSpec
from app.inference.preprocess import prepare_input

TRUNK_NAME = "efficientnet-lite0-imagenet"
# How the training recipe feeds the trunk: 224 x 224 letterboxed, 0..1 mapped to -1..1.
TRUNK_INPUT = InputSpec(size=(224, 224), channels=3, resize="letterbox", mean=(0.5, 0.5, 0.5),
                        std=(0.5, 0.5, 0.5))
TRUNK_LAST_BLOCK = 14  # stage 6 ends here; stage 7 and the head are fine-tuned per package
# sha256 of the trunk's tensors (stem and blocks 0-14, names and float32 values, see fingerprint): a
# package network whose tensors hash to it IS the trunk, so the installers need not carry ImageNet weights.
TRUNK_SHA256 = "007b45f4ae0e694837aed7fa74814717726e42d0b4fe41c5ba75b55c3872c92e"
_BLOCK = re.compile(r"^(?P<prefix>(?:\w+\.)*?)_blocks\.(?P<index>\d+)$")


def load_trunk() -> torch.nn.Module:
    """The ImageNet EfficientNet-Lite0 of the installed weights package, in eval mode on the CPU
    (ImportError or OSError where it is not installed, as in the installers)."""
    from app.inference.networks import load_imagenet_encoder
    from app.inference.networks.efficientnet_lite import EfficientNetLite

    network = EfficientNetLite("lite0", num_classes=1)
    load_imagenet_encoder(network)
    return network.eval()


def _trunk_keys() -> list[str]:
    from app.inference.networks.efficientnet_lite import EfficientNetLite

    return [key for key in EfficientNetLite("lite0", num_classes=1).state_dict()
            if not key.endswith("num_batches_tracked") and (key.startswith(("_conv_stem.", "_bn0.")) or (
                key.startswith("_blocks.") and int(key.split(".")[1]) <= TRUNK_LAST_BLOCK))]


def fingerprint(state: dict[str, torch.Tensor], prefix: str = "") -> str | None:
    """sha256 of the trunk's tensors in `state` (their names without `prefix`); None when one is missing."""
    digest = hashlib.sha256()
    for key in _trunk_keys():
        tensor = state.get(prefix + key)
        if tensor is None:
            return None
        digest.update(key.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def is_trunk_block(layer: str) -> bool:
    found = _BLOCK.match(layer)
    return bool(found) and not found["prefix"] and int(found["index"]) <= TRUNK_LAST_BLOCK


def trunk_prefix(network: torch.nn.Module, layer: str) -> str | None:
    """When `layer` of `network` is a trunk block and the network's trunk tensors are the shared trunk's,
    the prefix of its trunk's module names ("" or e.g. "encoder."); else None."""
    found = _BLOCK.match(layer)
    if not found or int(found["index"]) > TRUNK_LAST_BLOCK:
        return None
    prefix = found["prefix"]
    return prefix if fingerprint(network.state_dict(), prefix) == TRUNK_SHA256 else None


def pooled_layers(network: torch.nn.Module, layers: set[str], image: LoadedImage, frame: int, spec: InputSpec,
                  device: torch.device | str = "cpu") -> dict[str, np.ndarray]:
    """The spatially pooled output of each named layer in one forward pass of `image`: (1, C) float64."""
    modules = dict(network.named_modules())
    missing = sorted(name for name in layers if name not in modules)
    if missing:
        raise ValueError(f"the guard's layer {missing[0]!r} is not in the network")
    pooled: dict[str, np.ndarray] = {}

    def keep(name: str):
        return lambda _module, _input, out: pooled.__setitem__(name, out.detach().float().mean((2, 3)).cpu().numpy())

    handles = [modules[name].register_forward_hook(keep(name)) for name in layers]
    try:
        tensor, _ = prepare_input(image, frame, spec)
        with torch.inference_mode():
            network(tensor.to(device))
    finally:
        for handle in handles:
            handle.remove()
    return {name: values.astype(np.float64) for name, values in pooled.items()}
