"""Augmentation on the device, a whole batch at once: how images of one kind vary between sites and devices.

Geometry (small rotation, scale, shift, left-right mirror) moves image and mask together; intensity
(gamma, contrast, brightness), blur and noise change only the image; ultrasound adds speckle and a
depth-gain ramp. The letterbox padding stays black, as the app feeds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional


@dataclass(frozen=True)
class Augmentation:
    rotation_degrees: float = 10.0
    scale: tuple[float, float] = (0.85, 1.2)
    shift: float = 0.06  # of the image size
    mirror: bool = True
    gamma_log_sd: float = 0.25
    contrast: tuple[float, float] = (0.75, 1.3)
    brightness: float = 0.08
    blur_probability: float = 0.3
    blur_sigma: float = 1.2
    noise_sd: float = 0.03
    speckle_sd: float = 0.0  # ultrasound: multiplicative, spatially correlated noise
    depth_gain: float = 0.0  # ultrasound: brightness ramp from top (near) to bottom (far), +/- this


ULTRASOUND = Augmentation(speckle_sd=0.2, depth_gain=0.35)
RADIOGRAPH = Augmentation()
MRI = Augmentation(rotation_degrees=15.0)


def _uniform(n: int, low: float, high: float, device) -> torch.Tensor:
    return torch.rand(n, device=device) * (high - low) + low


def augment(images: torch.Tensor, content: torch.Tensor, masks: torch.Tensor | None, spec: Augmentation
            ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """images (N, 1, H, W) in 0..1; content (N, 1, H, W) 1 inside the letterboxed image, 0 on its padding;
    masks (N, 1, H, W) 0/1 or None. Image and mask move alike; what lies outside the image stays black."""
    n, device = images.shape[0], images.device
    angle = _uniform(n, -spec.rotation_degrees, spec.rotation_degrees, device) * torch.pi / 180
    zoom = torch.exp(_uniform(n, *torch.log(torch.tensor(spec.scale)).tolist(), device))
    flip = torch.where(torch.rand(n, device=device) < 0.5, -1.0, 1.0) if spec.mirror else torch.ones(n, device=device)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos * flip, -sin, _uniform(n, -spec.shift, spec.shift, device) * 2], 1),
                         torch.stack([sin * flip, cos, _uniform(n, -spec.shift, spec.shift, device) * 2], 1)], 1)
    grid = functional.affine_grid(theta, list(images.shape), align_corners=False)
    inside = functional.grid_sample(content.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    out = functional.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if masks is not None:
        masks = (functional.grid_sample(masks.float(), grid, mode="bilinear", padding_mode="zeros",
                                        align_corners=False) >= 0.5).float()
    return _intensity(out, spec).clamp(0, 1) * inside, masks


def content_masks(pack_looks_hw, size: int, device) -> torch.Tensor:
    """(N, 1, S, S) uint8: 1 where a letterboxed image of original (height, width) lies in the S x S input."""
    out = torch.zeros((len(pack_looks_hw), 1, size, size), dtype=torch.uint8, device=device)
    for index, (height, width) in enumerate(pack_looks_hw):
        factor = min(size / height, size / width)
        new_h, new_w = max(1, round(height * factor)), max(1, round(width * factor))
        top, left = (size - new_h) // 2, (size - new_w) // 2
        out[index, 0, top:top + new_h, left:left + new_w] = 1
    return out


def _intensity(x: torch.Tensor, spec: Augmentation) -> torch.Tensor:
    n, _, height, width = x.shape
    device = x.device
    shape = (n, 1, 1, 1)
    gamma = torch.exp(torch.randn(n, device=device) * spec.gamma_log_sd).view(shape)
    x = x.clamp_min(0).pow(gamma)
    mean = x.mean((2, 3), keepdim=True)
    x = (x - mean) * _uniform(n, *spec.contrast, device).view(shape) + mean
    x = x + _uniform(n, -spec.brightness, spec.brightness, device).view(shape)
    if spec.depth_gain:
        ramp = torch.linspace(-0.5, 0.5, height, device=device).view(1, 1, height, 1)
        x = x * (1 + _uniform(n, -spec.depth_gain, spec.depth_gain, device).view(shape) * ramp)
    if spec.speckle_sd:
        speckle = functional.avg_pool2d(torch.randn_like(x), 3, 1, 1) * 3  # correlated over ~3 pixels, sd ~1
        x = x * (1 + speckle * _uniform(n, 0, spec.speckle_sd, device).view(shape))
    if spec.blur_probability:
        x = _maybe_blur(x, spec)
    return x + torch.randn_like(x) * _uniform(n, 0, spec.noise_sd, device).view(shape)


def _maybe_blur(x: torch.Tensor, spec: Augmentation) -> torch.Tensor:
    n, device = x.shape[0], x.device
    sigma = _uniform(n, 0.3, spec.blur_sigma, device)
    taps = torch.arange(-3, 4, device=device, dtype=x.dtype)
    kernel = torch.exp(-taps[None] ** 2 / (2 * sigma[:, None] ** 2))
    kernel = kernel / kernel.sum(1, keepdim=True)  # (n, 7)
    blurred = functional.conv2d(functional.pad(x.transpose(0, 1), (3, 3, 0, 0), mode="replicate"),
                                kernel.view(n, 1, 1, 7), groups=n)
    blurred = functional.conv2d(functional.pad(blurred, (0, 0, 3, 3), mode="replicate"),
                                kernel.view(n, 1, 7, 1), groups=n).transpose(0, 1)
    chosen = (torch.rand(n, device=device) < spec.blur_probability).view(n, 1, 1, 1)
    return torch.where(chosen, blurred, x)
