"""Turning a displayed image into the tensor a model expects, and its outputs back onto the image."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from app.core.image import LoadedImage
from app.inference.manifest import InputSpec


@dataclass(frozen=True)
class InputGeometry:
    """How image pixels were placed in the network input: scaled by (sy, sx), offset by (top, left)."""

    image_size: tuple[int, int]  # (height, width) of the image
    input_size: tuple[int, int]
    scale: tuple[float, float]
    offset: tuple[int, int]

    def to_image(self, values: np.ndarray) -> np.ndarray:
        """A map over the network input (any resolution) resampled onto the image's pixel grid."""
        in_h, in_w = self.input_size
        if values.shape != (in_h, in_w):
            values = cv2.resize(values.astype(np.float32), (in_w, in_h), interpolation=cv2.INTER_LINEAR)
        top, left = self.offset
        height = max(1, round(self.image_size[0] * self.scale[0]))
        width = max(1, round(self.image_size[1] * self.scale[1]))
        inner = values[top:top + height, left:left + width]
        return cv2.resize(inner.astype(np.float32), (self.image_size[1], self.image_size[0]),
                          interpolation=cv2.INTER_LINEAR)


def intensity01(image: LoadedImage, frame: int) -> np.ndarray:
    """The frame as float32 grey or RGB in 0..1: 8-bit by /255, deeper data by its 0.5-99.5 percentiles."""
    pixels = image.frame(frame)
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / 255.0
    sample = pixels[:: max(1, pixels.shape[0] // 512), :: max(1, pixels.shape[1] // 512)]
    lo, hi = np.percentile(sample, [0.5, 99.5])
    scaled = (pixels.astype(np.float32) - lo) / max(hi - lo, 1e-6)
    if image.info.presentation_inverse:
        scaled = 1.0 - scaled
    return np.clip(scaled, 0.0, 1.0)


def prepare_input(image: LoadedImage, frame: int, spec: InputSpec) -> tuple[torch.Tensor, InputGeometry]:
    """(1, C, H, W) float tensor normalised as the model card says, and where the image went in it."""
    pixels = intensity01(image, frame)
    if pixels.ndim == 3 and spec.channels == 1:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    image_h, image_w = pixels.shape[:2]
    in_h, in_w = spec.size
    if spec.resize == "stretch":
        scale = (in_h / image_h, in_w / image_w)
        resized, offset = cv2.resize(pixels, (in_w, in_h), interpolation=cv2.INTER_AREA), (0, 0)
    else:
        factor = min(in_h / image_h, in_w / image_w)
        new_h, new_w = max(1, round(image_h * factor)), max(1, round(image_w * factor))
        inner = cv2.resize(pixels, (new_w, new_h), interpolation=cv2.INTER_AREA)
        resized = np.zeros((in_h, in_w, *pixels.shape[2:]), np.float32)
        top, left = (in_h - new_h) // 2, (in_w - new_w) // 2
        resized[top:top + new_h, left:left + new_w] = inner
        scale, offset = (new_h / image_h, new_w / image_w), (top, left)
    if resized.ndim == 2:
        resized = np.repeat(resized[..., None], spec.channels, axis=2)
    mean = np.asarray(spec.mean, np.float32)
    std = np.asarray(spec.std, np.float32)
    tensor = torch.from_numpy(((resized - mean) / std).transpose(2, 0, 1).copy()).unsqueeze(0)
    geometry = InputGeometry(image_size=(image_h, image_w), input_size=(in_h, in_w), scale=scale, offset=offset)
    return tensor, geometry
