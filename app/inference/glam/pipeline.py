"""The GLAM pipeline on views of one exam: window each view, read all windows through the global
network in one batch, pool, pick one patch per view, read the patches through the local network in
one batch, and fuse the saliency maps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from app.inference.glam.crop import CropSettings, breast_mask, crop_breast
from app.inference.glam.networks import HEAD_WEIGHTS, LOCAL_STRIDE, SALIENCY_STRIDE, GlamNetwork
from app.inference.glam.window import WindowPlacement, best_center, place_window, standardise, window_pixels

CLASSES = ("benign", "malignant")


@dataclass(frozen=True)
class GlamSettings:
    """Sizes of one GLAM family member; the official one reads 2944 x 1920 windows and 512 patches."""

    window: tuple[int, int] = (2944, 1920)
    patch: int = 512
    top_t: float = 0.03  # share of saliency cells averaged by top-t pooling
    resample: float = 1.0  # source pixels are scaled by this first (e.g. 0.5 for 200 -> 400 micron)
    pixel_size_mm: float | None = None  # the size the model was trained at: images that state their pixel
    # spacing are resampled to it (then `resample` is only for images that do not)
    crop: CropSettings = field(default_factory=CropSettings)
    default_view: str = "MLO"  # when the image does not say
    tissue_only: bool = False  # saliency only where the window holds breast (not in the published method;
    # for data such as film mammograms whose windows are largely background)

    def __post_init__(self) -> None:
        height, width = self.window
        if height % SALIENCY_STRIDE or width % SALIENCY_STRIDE or self.patch % SALIENCY_STRIDE:
            raise ValueError(f"window and patch sizes must be multiples of {SALIENCY_STRIDE}")
        if not (SALIENCY_STRIDE <= self.patch <= min(height, width)):
            raise ValueError("the patch must fit inside the window")
        if not 0 < self.top_t <= 1 or not 0 < self.resample <= 4:
            raise ValueError("top_t must lie in (0, 1] and resample in (0, 4]")

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> GlamSettings:
        crop = raw.get("crop", {})
        return cls(window=tuple(int(v) for v in raw.get("window", cls.window)),
                   patch=int(raw.get("patch", cls.patch)), top_t=float(raw.get("top_t", cls.top_t)),
                   resample=float(raw.get("resample", 1.0)),
                   pixel_size_mm=float(raw["pixel_size_mm"]) if raw.get("pixel_size_mm") else None,
                   crop=CropSettings(erode_iterations=int(crop.get("erode_iterations", 100)),
                                     buffer=int(crop.get("buffer", 50)),
                                     background=float(crop.get("background", 0.0))),
                   default_view=str(raw.get("default_view", "MLO")),
                   tissue_only=bool(raw.get("tissue_only", False)))

    def to_dict(self) -> dict[str, Any]:
        return {"window": list(self.window), "patch": self.patch, "top_t": self.top_t, "resample": self.resample,
                "pixel_size_mm": self.pixel_size_mm,
                "crop": {"erode_iterations": self.crop.erode_iterations, "buffer": self.crop.buffer,
                         "background": self.crop.background},
                "default_view": self.default_view, "tissue_only": self.tissue_only}


@dataclass(frozen=True)
class PreparedView:
    window: np.ndarray  # standardised (H, W) float32, model's frame
    placement: WindowPlacement
    view: str
    source_shape: tuple[int, int]  # after resampling
    tissue: np.ndarray  # (H/16, W/16) float32: 1 where at least half the saliency cell is breast


@dataclass(frozen=True)
class ViewOutput:
    scores: np.ndarray  # (2,) benign, malignant: the mean of the three top-t pooled maps
    global_saliency: np.ndarray  # (2, H/16, W/16)
    saliency: np.ndarray  # (2, H/4, W/4): global and local fused
    patch_corner: tuple[int, int]  # (row, column) of the patch in the window


def chest_wall_on_right(pixels: np.ndarray, background: float = 0.0) -> bool:
    """For images that do not say their laterality: the side holding more breast pixels
    (`background`: share of the maximum below which a pixel is background)."""
    mask = pixels > background * float(pixels.max())
    half = mask.shape[1] // 2
    return int(mask[:, half:].sum()) > int(mask[:, :half].sum())


def prepare_view(pixels: np.ndarray, right: bool, view: str, settings: GlamSettings) -> PreparedView:
    """Resample, crop, mirror, place and standardise one view (grey pixels, breast bright)."""
    pixels = np.asarray(pixels, np.float32)
    if settings.resample != 1.0:
        height, width = pixels.shape
        size = (max(1, round(width * settings.resample)), max(1, round(height * settings.resample)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    view = view if view in ("CC", "MLO") else settings.default_view
    mask = breast_mask(pixels, settings.crop)
    crop = crop_breast(pixels, right, settings.crop, mask)
    placement = place_window(crop, view, settings.window, best_center(crop, view, settings.window, crop.cut(mask)))
    in_window = window_pixels(mask, placement)
    cells = (settings.window[1] // SALIENCY_STRIDE, settings.window[0] // SALIENCY_STRIDE)
    tissue = (cv2.resize(in_window, cells, interpolation=cv2.INTER_AREA) >= 0.5).astype(np.float32)
    return PreparedView(standardise(window_pixels(pixels, placement)), placement, view, pixels.shape, tissue)


def tissue_batch(views: list[PreparedView], device: torch.device = torch.device("cpu")) -> torch.Tensor:
    return torch.from_numpy(np.stack([v.tissue for v in views])[:, None]).to(device)


def top_t_pool(maps: torch.Tensor, top_t: float) -> torch.Tensor:
    """(N, C, h, w) -> (N, C): the mean of each map's highest `top_t` share of values."""
    flat = maps.flatten(2)
    count = max(1, round(top_t * flat.shape[-1]))
    return flat.topk(count, dim=-1).values.mean(-1)


def global_outputs(network: GlamNetwork, windows: torch.Tensor, top_t: float, tissue: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
    """(scores (N, 2), saliency (N, 2, h, w), the three maps) for standardised windows (N, 1, H, W);
    with `tissue` (N, 1, h, w) the maps are zero outside it."""
    maps = network.global_network(windows)
    if tissue is not None:
        maps = tuple(m * tissue for m in maps)
    saliency = sum(weight * m for weight, m in zip(HEAD_WEIGHTS[::-1], maps))  # x1 0.2, x2 0.6, x3 0.2
    scores = torch.stack([top_t_pool(m, top_t) for m in maps]).mean(0)
    return scores, saliency, maps


def select_patches(saliency: torch.Tensor, patch: int) -> list[tuple[int, int]]:
    """Top-left corner (row, column, input pixels) of the window whose summed, per-class min-max
    normalised saliency is highest, one per view."""
    low = saliency.amin(dim=(2, 3), keepdim=True)
    high = saliency.amax(dim=(2, 3), keepdim=True)
    normalised = ((saliency - low) / (high - low).clamp_min(1e-12)).sum(1, keepdim=True)
    cells = patch // SALIENCY_STRIDE
    pooled = F.avg_pool2d(normalised, cells, stride=1)
    width = pooled.shape[-1]
    best = pooled.flatten(1).argmax(1).tolist()
    return [((index // width) * SALIENCY_STRIDE, (index % width) * SALIENCY_STRIDE) for index in best]


def cut_patches(windows: torch.Tensor, corners: list[tuple[int, int]], patch: int) -> torch.Tensor:
    return torch.stack([windows[i, :, r:r + patch, c:c + patch] for i, (r, c) in enumerate(corners)])


def fuse(saliency: torch.Tensor, local: torch.Tensor, corners: list[tuple[int, int]]) -> torch.Tensor:
    """(N, 2, H/4, W/4): the mean of the nearest-upsampled global map and the local map pasted at
    its patch (zero elsewhere), so outside the patch it is half the global map."""
    scale = SALIENCY_STRIDE // LOCAL_STRIDE
    fused = F.interpolate(saliency, scale_factor=scale, mode="nearest") / 2
    size = local.shape[-1]
    for i, (row, col) in enumerate(corners):
        r, c = row // LOCAL_STRIDE, col // LOCAL_STRIDE
        fused[i, :, r:r + size, c:c + size] += local[i] / 2
    return fused


def run_views(network: GlamNetwork, views: list[PreparedView], settings: GlamSettings,
              device: torch.device = torch.device("cpu")) -> list[ViewOutput]:
    """All views through the global network as one batch, then all patches as one batch."""
    batch = torch.from_numpy(np.stack([v.window for v in views])[:, None]).to(device)
    # channels-last helps cuDNN; oneDNN on this AVX2 CPU measured slower with it (benchmarks/glam.py)
    layout = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    batch = batch.contiguous(memory_format=layout)
    tissue = tissue_batch(views, device) if settings.tissue_only else None
    with torch.inference_mode():
        scores, saliency, _ = global_outputs(network, batch, settings.top_t, tissue)
        corners = select_patches(saliency, settings.patch)
        patches = cut_patches(batch, corners, settings.patch).contiguous(memory_format=layout)
        local = network.detection_network(patches)
        fused = fuse(saliency, local, corners)
    scores, saliency, fused = (t.float().cpu().numpy() for t in (scores, saliency, fused))
    return [ViewOutput(scores[i], saliency[i], fused[i], corners[i]) for i in range(len(views))]
