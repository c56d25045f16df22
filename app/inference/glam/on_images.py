"""GLAM on the viewer's images: pixels in, saliency maps and the patch box back on each image's grid."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from app.core.hanging import stored_chest_wall_side
from app.core.image import LoadedImage
from app.core.layers import Box
from app.inference.glam.networks import LOCAL_STRIDE
from app.inference.glam.pipeline import (CLASSES, GlamSettings, PreparedView, ViewOutput, chest_wall_on_right,
                                         prepare_view, run_views)

MAP_STRIDE = LOCAL_STRIDE  # the fused map changes every 4 window pixels; finer grids hold nothing more


@dataclass(frozen=True)
class GlamOnImage:
    scores: np.ndarray  # (2,) benign, malignant
    saliency: dict[str, np.ndarray]  # class -> fused map on the image grid, one value per `map_scale` pixels
    map_scale: float  # image pixels per map pixel
    patch: Box  # the selected patch in image pixels


def view_pixels(image: LoadedImage, frame: int = 0) -> np.ndarray:
    """Grey float32 pixels with the breast bright (MONOCHROME1 and inverse presentation turned round)."""
    pixels = image.frame(frame)
    pixels = pixels.mean(axis=2) if pixels.ndim == 3 else pixels
    pixels = pixels.astype(np.float32)
    if image.info.presentation_inverse:
        pixels = float(pixels.max()) - pixels
    return pixels


def settings_for(image: LoadedImage, settings: GlamSettings) -> GlamSettings:
    """The settings with the resampling that brings this image to the model's pixel size, when both are known."""
    spacing = image.info.pixel_spacing
    if settings.pixel_size_mm and spacing and min(spacing) > 0:
        return replace(settings, resample=float(np.clip(min(spacing) / settings.pixel_size_mm, 0.05, 4.0)))
    return settings


def prepare_image(image: LoadedImage, settings: GlamSettings, frame: int = 0) -> PreparedView:
    pixels = view_pixels(image, frame)
    side = stored_chest_wall_side(image.info, image.frame(frame))  # as the hanging decides it
    right = side == "right" if side else chest_wall_on_right(pixels, settings.crop.background)
    return prepare_view(pixels, right, image.info.view or "", settings)


def on_image(output: ViewOutput, view: PreparedView, settings: GlamSettings) -> GlamOnImage:
    """A view's output placed on its source image (maps at `map_scale` image pixels per value)."""
    stride = MAP_STRIDE
    maps = {name: view.placement.to_source(output.saliency[c], view.source_shape, stride)
            for c, name in enumerate(CLASSES)}
    scale = stride / settings.resample
    x, y, width, height = view.placement.source_box(*output.patch_corner, settings.patch, settings.patch)
    factor = 1.0 / settings.resample
    patch = Box(x * factor, y * factor, width * factor, height * factor)
    return GlamOnImage(output.scores, maps, scale, patch)


def calibrated_scores(scores: np.ndarray, temperature) -> np.ndarray:
    """Each class's score with its temperature (a number, or one per class) applied to its logit; the
    scores as they are when the package has none."""
    if temperature is None:
        return scores
    p = np.clip(np.asarray(scores, np.float64), 1e-6, 1 - 1e-6)
    logits = np.log(p / (1 - p)) / np.asarray(temperature, np.float64)
    return (1 / (1 + np.exp(-logits))).astype(np.float32)


def run_images(network, images: list[tuple[LoadedImage, int]], settings: GlamSettings,
               device: torch.device = torch.device("cpu")) -> list[GlamOnImage]:
    """Several views (e.g. one exam) through GLAM at once: one global batch, one local batch."""
    per_image = [settings_for(image, settings) for image, _ in images]
    views = [prepare_image(image, own, frame) for (image, frame), own in zip(images, per_image)]
    outputs = run_views(network, views, settings, device)
    return [on_image(output, view, own) for output, view, own in zip(outputs, views, per_image)]
