"""The frozen ImageNet trunk of EfficientNet-Lite0, run once per image (and its mirror image) and cached.

Fine-tuning only the last stage and the head on a 2-core CPU is what makes five-fold cross-validation of every
model affordable: the trunk (stem and stages 1-6) costs most of the compute, and its
output for each training image never changes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from platformdirs import user_cache_dir

from app.inference.manifest import InputSpec
from app.inference.networks import build_network, load_imagenet_encoder
from app.inference.networks.efficientnet_lite import EfficientNetLite
from app.inference.preprocess import prepare_input
from app.io.study_loader import decode_image, read_info
from app.training.datasets import Sample

INPUT = InputSpec(size=(224, 224), channels=3, resize="letterbox", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
FROZEN_STAGES = 6  # stem and stages 1..6 stay as ImageNet trained them (1/32 resolution, 192 channels)


def pretrained_classifier(classes: int) -> EfficientNetLite:
    network = build_network({"type": "efficientnet-lite", "variant": "lite0", "num_classes": classes})
    load_imagenet_encoder(network)
    return network


def frozen_block_count(network: EfficientNetLite) -> int:
    return network.stage_ends[FROZEN_STAGES - 1] + 1


def trunk(network: EfficientNetLite, x: torch.Tensor) -> torch.Tensor:
    x = torch.nn.functional.relu6(network._bn0(network._conv_stem(x)))
    for block in network._blocks[: frozen_block_count(network)]:
        x = block(x)
    return x


def load_input(path: Path, spec: InputSpec = INPUT) -> torch.Tensor:
    """The (1, C, H, W) tensor the app itself would feed the model for this file."""
    image = decode_image(read_info(path))
    tensor, _ = prepare_input(image, 0, spec)
    return tensor


def cached_features(samples: list[Sample], progress=None) -> np.ndarray:
    """(N, 2, C, h, w) float16 trunk outputs for each image and its left-right mirror, cached on disk."""
    key = hashlib.sha256("\n".join(str(s.image) for s in samples).encode() + f"{INPUT}{FROZEN_STAGES}".encode()).hexdigest()[:16]
    path = Path(user_cache_dir("RadLens", appauthor=False)) / "training" / f"trunk-{key}.npy"
    if path.is_file():
        return np.load(path, mmap_mode="r")
    network = pretrained_classifier(1000).eval()
    out = None
    with torch.inference_mode():
        for index, sample in enumerate(samples):
            tensor = load_input(sample.image)
            pair = trunk(network, torch.cat([tensor, torch.flip(tensor, dims=[3])])).numpy().astype(np.float16)
            if out is None:
                out = np.empty((len(samples), *pair.shape), np.float16)
            out[index] = pair
            if progress:
                progress(index + 1, len(samples))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out
