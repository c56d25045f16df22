"""Training GLAM-Lite on mini-MIAS, supervised by the image labels AND the lesion circles of rois.csv.

Every view is prepared once (crop, mirror to the chest-wall-left frame, window) and held in memory
as tensors on the training device; each step augments its batch there with torch ops (affine warp,
gamma, contrast, blur, noise, then the per-window standardisation of inference), reads it through
the global network, cuts one patch per view (on a lesion, or where the network's saliency says) and
reads the patches through the local network. Losses: binary cross-entropy of the top-t pooled scores
against the image labels (as in GLAM) plus a pixel-wise, positive-weighted binary cross-entropy of
every map against the rendered circles of the lesions of its class (not in the published method,
which is weakly supervised). No per-sample Python loop runs in a step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from app.inference.glam.lite import GlamLiteNetwork
from app.inference.glam.networks import HEAD_WEIGHTS, LOCAL_STRIDE, SALIENCY_STRIDE
from app.inference.glam.pipeline import GlamSettings, PreparedView, select_patches, top_t_pool
from app.training.glam_mias import MiasCase, lesion_in_window


@dataclass(frozen=True)
class Recipe:
    epochs: int = 30
    batch: int = 16
    learning_rate: float = 1e-3  # heads; the ImageNet trunks at a third of it
    weight_decay: float = 1e-2
    pixel_weight: float = 1.0  # of the lesion-circle loss against the image-label loss
    positive_weight: float = 4.0  # of lesion cells in the pixel loss
    lesion_patch_share: float = 0.6  # of steps where a view with a located lesion has its patch cut on it
    seed: int = 0
    frozen_trunks: bool = False  # the reduced recipe for a CPU: both trunks stay at ImageNet, their features
    # are computed once for `cached_copies` variants of every view (the first as it is, the others
    # augmented), and only the heads (the maps' 1x1 and 3x3 layers) are trained
    cached_copies: int = 1
    variant: str = "lite0"  # of both EfficientNet-Lite trunks

    def describe(self) -> dict:
        return {"trunk": f"EfficientNet-{self.variant.capitalize()}", "epochs": self.epochs, "batch": self.batch,
                "optimiser": f"AdamW {self.learning_rate:g} (heads), {self.learning_rate / 3:g} (ImageNet trunks), "
                             f"weight decay {self.weight_decay:g}, 1 epoch warm-up then cosine decay",
                "loss": ("BCE of each top-t pooled map and of their mean against the image labels, plus "
                         f"{self.pixel_weight:g} x pixel-wise BCE (lesion cells weighted {self.positive_weight:g}) of every "
                         "global and local map against the rendered lesion circles of its class"),
                "patches": (f"one per view: on a located lesion (jittered by up to a quarter patch) in "
                            f"{self.lesion_patch_share:.0%} of the steps for views with one, else where the global "
                            "saliency puts it"),
                "seed": self.seed,
                "trunks": (f"frozen at ImageNet, their features cached for {self.cached_copies} variant(s) of each view "
                           "(the first unaugmented); only the heads trained" if self.frozen_trunks
                           else "fine-tuned end to end")}


@dataclass
class MiasTensors:
    """The prepared data set on one device."""

    windows: torch.Tensor  # (N, 1, H, W) standardised windows, exactly what inference reads
    tissue: torch.Tensor  # (N, 1, H/16, W/16)
    masks: torch.Tensor  # (N, 2, H/4, W/4) lesion discs per class (benign, malignant)
    known: torch.Tensor  # (N, 2): 1 where the class's pixel target is known (no lesion of it lacks coordinates)
    targets: torch.Tensor  # (N, 2) image labels

    def to(self, device: torch.device) -> MiasTensors:
        return MiasTensors(*(t.to(device) for t in (self.windows, self.tissue, self.masks, self.known, self.targets)))

    def subset(self, index: np.ndarray) -> MiasTensors:
        pick = torch.as_tensor(index, device=self.windows.device)
        return MiasTensors(*(t[pick] for t in (self.windows, self.tissue, self.masks, self.known, self.targets)))


MIN_RADIUS = 8.0  # window pixels (3.2 mm): the smallest circle drawn, as the pointing game counts it


def lesion_masks(cases: list[MiasCase], views: list[PreparedView], settings: GlamSettings) -> np.ndarray:
    """(N, 2, H/4, W/4) discs of each lesion (radius at least MIN_RADIUS) in its class's channel."""
    height, width = settings.window
    rows = (np.arange(height // LOCAL_STRIDE) + 0.5) * LOCAL_STRIDE
    cols = (np.arange(width // LOCAL_STRIDE) + 0.5) * LOCAL_STRIDE
    out = np.zeros((len(cases), 2, len(rows), len(cols)), np.float32)
    for i, (case, view) in enumerate(zip(cases, views)):
        for lesion in case.lesions:
            r, c, radius = lesion_in_window(view, lesion, settings)
            inside = (rows[:, None] - r) ** 2 + (cols[None, :] - c) ** 2 <= max(radius, MIN_RADIUS) ** 2
            out[i, 0 if lesion.severity == "B" else 1][inside] = 1.0
    return out


def mias_tensors(cases: list[MiasCase], views: list[PreparedView], settings: GlamSettings) -> MiasTensors:
    known = np.array([[s not in c.unlocated for s in "BM"] for c in cases], np.float32)
    return MiasTensors(torch.from_numpy(np.stack([v.window for v in views])[:, None].copy()),
                       torch.from_numpy(np.stack([v.tissue for v in views])[:, None].copy()),
                       torch.from_numpy(lesion_masks(cases, views, settings)), torch.from_numpy(known),
                       torch.from_numpy(np.stack([c.targets for c in cases])))


def _uniform(count: int, low: float, high: float, generator: torch.Generator, device) -> torch.Tensor:
    return low + (high - low) * torch.rand(count, generator=generator, device=device)


def augment(windows: torch.Tensor, masks: torch.Tensor, tissue: torch.Tensor, generator: torch.Generator
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One random variation per view, as mammograms vary: rotation +/-8 degrees, scale 0.9-1.1, shift
    +/-5%, the same warp for the window, its lesion masks and tissue cells; then on the window scaled to
    0..1: gamma 0.67-1.5, a film-like S-curve or a flatter digital-like tone blended in, blur or
    sharpening, noise; then standardised per window as at inference. (Left-right mirroring: every view
    is already in the chest-wall-left frame, right views mirrored, as at inference.)"""
    count, device = len(windows), windows.device
    height, width = windows.shape[-2:]
    angle = _uniform(count, -8, 8, generator, device) * math.pi / 180
    scale = _uniform(count, 0.9, 1.1, generator, device)
    shift = torch.stack([_uniform(count, -0.1, 0.1, generator, device) for _ in range(2)], 1)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin * height / width, shift[:, 0]], 1),
                         torch.stack([sin * width / height, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, [count, 1, height, width], align_corners=False)
    low = windows.amin(dim=(2, 3), keepdim=True)
    x = (windows - low) / (windows.amax(dim=(2, 3), keepdim=True) - low).clamp_min(1e-6)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    small = F.affine_grid(theta, [count, 1, *masks.shape[-2:]], align_corners=False)
    masks = F.grid_sample(masks, small, mode="bilinear", padding_mode="zeros", align_corners=False)
    cells = F.affine_grid(theta, [count, 1, *tissue.shape[-2:]], align_corners=False)
    tissue = F.grid_sample(tissue, cells, mode="nearest", padding_mode="zeros", align_corners=False)
    view = (count, 1, 1, 1)
    gamma = torch.exp(_uniform(count, math.log(0.67), math.log(1.5), generator, device)).view(view)
    x = x.clamp(0, 1) ** gamma
    curve = torch.sigmoid(_uniform(count, 4, 10, generator, device).view(view) * (x - 0.5))  # film-like S-curve
    blend = _uniform(count, -0.5, 0.5, generator, device).view(view)  # < 0: flatter (digital-like) tones
    x = x + blend * (curve - x)
    smooth = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    sharpen = _uniform(count, -0.6, 0.6, generator, device).view(view)  # > 0 blurs, < 0 sharpens
    x = x + sharpen * (smooth - x)
    x = x + _uniform(count, 0, 0.02, generator, device).view(view) * torch.randn(
        x.shape, generator=generator, device=device)
    mean, std = x.mean(dim=(2, 3), keepdim=True), x.std(dim=(2, 3), keepdim=True).clamp_min(1e-5)
    return (x - mean) / std, masks, tissue


def cut(values: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, size, size) squares at (rows, cols) of (N, C, H, W), one gather for the whole batch."""
    count, channels = values.shape[:2]
    offsets = torch.arange(size, device=values.device)
    r = (rows[:, None] + offsets)[:, None, :, None].expand(count, channels, size, size)
    c = (cols[:, None] + offsets)[:, None, None, :].expand(count, channels, size, size)
    flat = values.flatten(2)
    return flat.gather(2, (r * values.shape[-1] + c).flatten(2)).view(count, channels, size, size)


def patch_corners(saliency: torch.Tensor, masks: torch.Tensor, known: torch.Tensor, settings: GlamSettings,
                  share: float, generator: torch.Generator, grid: int = LOCAL_STRIDE
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-left corners (window pixels, multiples of `grid`): the saliency's choice, or, for views with a
    located lesion in `share` of the cases, a square around the strongest lesion cell, jittered."""
    device, patch = saliency.device, settings.patch
    height, width = settings.window
    chosen = torch.tensor(select_patches(saliency, patch), device=device).view(-1, 2)
    lesion = (masks * known[:, :, None, None]).sum(1).flatten(1)
    peak = lesion.argmax(1)
    centre = torch.stack([(peak // masks.shape[-1]) * LOCAL_STRIDE, (peak % masks.shape[-1]) * LOCAL_STRIDE], 1)
    jitter = ((torch.rand(len(peak), 2, generator=generator, device=device) * 2 - 1) * patch / 4).long()
    around = centre - patch // 2 + jitter
    use = (lesion.amax(1) > 0.5) & (torch.rand(len(peak), generator=generator, device=device) < share)
    corners = torch.where(use[:, None], around, chosen)
    corners = torch.stack([corners[:, 0].clamp(0, height - patch), corners[:, 1].clamp(0, width - patch)], 1)
    corners = corners // grid * grid
    return corners[:, 0], corners[:, 1]


def pixel_loss(logits: torch.Tensor, target: torch.Tensor, known: torch.Tensor, positive_weight: float) -> torch.Tensor:
    weight = known[:, :, None, None] * (1 + (positive_weight - 1) * target)
    loss = F.binary_cross_entropy_with_logits(logits, target, weight=weight.expand_as(target), reduction="sum")
    return loss / weight.expand_as(target).sum().clamp_min(1.0)


def image_loss(maps: list[torch.Tensor], targets: torch.Tensor, top_t: float) -> torch.Tensor:
    pooled = [top_t_pool(m, top_t) for m in maps]
    scores = torch.stack(pooled).mean(0)
    bce = [F.binary_cross_entropy(p.clamp(1e-6, 1 - 1e-6), targets) for p in pooled]
    return F.binary_cross_entropy(scores.clamp(1e-6, 1 - 1e-6), targets) + sum(bce) / len(bce)


@dataclass
class Batch:
    """What one step reads: windows (augmented, standardised) or their cached trunk features, and targets."""

    masks: torch.Tensor
    tissue: torch.Tensor
    known: torch.Tensor
    targets: torch.Tensor
    windows: torch.Tensor | None = None
    features: dict[int, torch.Tensor] | None = None  # strides 8, 16 and 32 of the frozen trunk


def step_loss(network: GlamLiteNetwork, batch: Batch, settings: GlamSettings, recipe: Recipe,
              generator: torch.Generator, autocast: bool) -> torch.Tensor:
    x, masks, tissue = batch.windows, batch.masks, batch.tissue
    device = masks.device
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        features = network.global_network.encoder(x) if x is not None else batch.features
        logits = network.global_network.maps(features)
    logits = [m.float() for m in logits]
    cells = tissue if settings.tissue_only else torch.ones_like(tissue)
    maps = [torch.sigmoid(m) * cells for m in logits]
    target16 = F.avg_pool2d(masks, SALIENCY_STRIDE // LOCAL_STRIDE).clamp(0, 1)
    loss = image_loss(maps, batch.targets, settings.top_t) + recipe.pixel_weight * sum(
        pixel_loss(m, target16, batch.known, recipe.positive_weight) for m in logits) / len(logits)
    with torch.no_grad():
        saliency = sum(w * m for w, m in zip(HEAD_WEIGHTS[::-1], maps))
        grid = LOCAL_STRIDE if x is not None else SALIENCY_STRIDE  # cached features are cut on their own grid
        rows, cols = patch_corners(saliency, masks, batch.known, settings, recipe.lesion_patch_share, generator, grid)
    size = settings.patch // LOCAL_STRIDE
    local_target = cut(masks, rows // LOCAL_STRIDE, cols // LOCAL_STRIDE, size)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        if x is not None:
            local = network.detection_network.logits(cut(x, rows, cols, settings.patch))
        else:
            local = network.detection_network.maps(
                {s: cut(batch.features[s], rows // s, cols // s, settings.patch // s) for s in (8, 16)})
    local = local.float()
    known = batch.known
    present = (local_target.flatten(2).amax(2) > 0.5).float()
    patch_labels = known * present + (1 - known) * batch.targets  # unlocated lesions: the image's label
    loss = loss + image_loss([torch.sigmoid(local)], patch_labels, settings.top_t)
    return loss + recipe.pixel_weight * pixel_loss(local, local_target, known, recipe.positive_weight)


@dataclass
class FeatureCache:
    """The frozen trunk's stride-8, 16 and 32 features of `copies` variants of every view, with the
    variants' masks and tissue cells: (copies, N, ...) each."""

    f8: torch.Tensor
    f16: torch.Tensor
    f32: torch.Tensor
    masks: torch.Tensor
    tissue: torch.Tensor

    def subset(self, index: np.ndarray) -> FeatureCache:
        pick = torch.as_tensor(index, device=self.f8.device)
        return FeatureCache(*(t[:, pick] for t in (self.f8, self.f16, self.f32, self.masks, self.tissue)))


def cache_features(network: GlamLiteNetwork, data: MiasTensors, copies: int, seed: int, progress=None,
                   chunk: int = 8) -> FeatureCache:
    generator = torch.Generator(device=data.windows.device).manual_seed(seed)
    encoder = network.global_network.encoder.eval()
    parts: dict[str, list] = {"f8": [], "f16": [], "f32": [], "masks": [], "tissue": []}
    total, done = copies * -(-len(data.windows) // chunk), 0
    with torch.inference_mode():
        for copy_number in range(copies):
            for key in parts:
                parts[key].append([])
            for start in range(0, len(data.windows), chunk):
                x, masks, tissue = (data.windows[start:start + chunk], data.masks[start:start + chunk],
                                    data.tissue[start:start + chunk])
                if copy_number:
                    x, masks, tissue = augment(x, masks, tissue, generator)
                features = encoder(x)
                for key, value in (("f8", features[8]), ("f16", features[16]), ("f32", features[32]), ("masks", masks),
                                   ("tissue", tissue)):
                    parts[key][-1].append(value.float())
                done += 1
                if progress:
                    progress(done, total)
    return FeatureCache(*(torch.stack([torch.cat(c) for c in parts[k]]) for k in ("f8", "f16", "f32", "masks", "tissue")))


def train(network: GlamLiteNetwork, data: MiasTensors, settings: GlamSettings, recipe: Recipe, seed: int,
          progress=None, cache: FeatureCache | None = None) -> list[float]:
    """AdamW over shuffled batches of the views in `data` (on the network's device); the mean loss per epoch.
    With `recipe.frozen_trunks`, `cache` holds the same views' frozen features (`cache_features`)."""
    device = data.windows.device
    torch.manual_seed(seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    order_generator = torch.Generator().manual_seed(seed)
    frozen = set()
    if recipe.frozen_trunks:
        frozen = {id(p) for p in (*network.global_network.encoder.parameters(),
                                  *network.detection_network.encoder.parameters())}
    for parameter in network.parameters():
        parameter.requires_grad_(id(parameter) not in frozen)
    named = [(n, p) for n, p in network.named_parameters() if p.requires_grad]
    trunks = [p for n, p in named if ".encoder." in f".{n}"]
    heads = [p for n, p in named if ".encoder." not in f".{n}"]
    optimiser = torch.optim.AdamW([{"params": trunks, "lr": recipe.learning_rate / 3},
                                   {"params": heads, "lr": recipe.learning_rate}], weight_decay=recipe.weight_decay)
    per_epoch = max(1, len(data.windows) // recipe.batch)  # whole batches only (batch norm)
    steps = recipe.epochs * per_epoch
    warm = per_epoch

    def factor(step: int) -> float:
        return (step + 1) / warm if step < warm else 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, factor)
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 0.1  # the TF-style 0.01 of the trunks would barely move in a few hundred steps
    network.train()
    if recipe.frozen_trunks:  # frozen trunks keep ImageNet's batch statistics, as the cache was computed
        network.global_network.encoder.eval()
        network.detection_network.encoder.eval()
    autocast = device.type == "cuda"
    losses, done = [], 0
    for _ in range(recipe.epochs):
        order = torch.randperm(len(data.windows), generator=order_generator).to(device)
        total = torch.zeros((), device=device)
        for start in range(0, per_epoch * recipe.batch, recipe.batch):
            pick = order[start:start + recipe.batch]
            if cache is None:
                x, masks, tissue = augment(data.windows[pick], data.masks[pick], data.tissue[pick], generator)
                batch = Batch(masks, tissue, data.known[pick], data.targets[pick], windows=x)
            else:
                variant = torch.randint(0, cache.f8.shape[0], (len(pick),), generator=generator, device=device)
                batch = Batch(cache.masks[variant, pick], cache.tissue[variant, pick], data.known[pick],
                              data.targets[pick], features={8: cache.f8[variant, pick], 16: cache.f16[variant, pick],
                                                            32: cache.f32[variant, pick]})
            loss = step_loss(network, batch, settings, recipe, generator, autocast)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.detach()
            done += 1
            if progress:
                progress(done, steps)
        losses.append(float(total) / per_epoch)
    for parameter in network.parameters():
        parameter.requires_grad_(True)
    network.eval()
    return losses


def pooled_features(network: GlamLiteNetwork, windows: torch.Tensor, layer: str, chunk: int = 32) -> np.ndarray:
    """The spatial mean of `layer`'s output for each window (the out-of-distribution guard's features),
    computed as inference computes them (float32)."""
    module = dict(network.named_modules())[layer]
    pooled: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: pooled.append(out.detach().float().mean((2, 3))))
    try:
        with torch.inference_mode():
            for start in range(0, len(windows), chunk):
                network.global_network(windows[start:start + chunk])
    finally:
        handle.remove()
    return torch.cat(pooled).cpu().numpy()
