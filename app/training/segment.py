"""Segmentation recipe: attention U-Net decoder trained on the frozen ImageNet EfficientNet-Lite0 encoder.

The encoder's maps (strides 2-32) of every image and its mirror are computed once; only the decoder
learns (Dice + BCE). One held-out split (20%, stratified by class, near-duplicates grouped) gives the
model card's Dice and IoU on lesion images; the shipped weights are the model trained on the other 80%.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import torch
from torch.nn import functional

from app.inference.networks import build_network, load_imagenet_encoder
from app.training.datasets import Sample
from app.training.features import INPUT, load_input
from app.training.metrics import dice_and_iou

EPOCHS, BATCH, LEARNING_RATE = 20, 16, 2e-3


def pretrained_unet():
    network = build_network({"type": "efficientnet-lite-unet", "variant": "lite0"})
    load_imagenet_encoder(network.encoder)
    return network


def target_mask(sample: Sample) -> np.ndarray:
    """The union of the image's lesion masks, placed in the network input exactly like the image."""
    image = cv2.imread(str(sample.image), cv2.IMREAD_GRAYSCALE)
    union = np.zeros(image.shape, np.float32)
    for path in sample.masks:
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if mask is not None and mask.shape == union.shape:
            union = np.maximum(union, (mask > 0).astype(np.float32))
    in_h, in_w = INPUT.size
    factor = min(in_h / union.shape[0], in_w / union.shape[1])
    new_h, new_w = max(1, round(union.shape[0] * factor)), max(1, round(union.shape[1] * factor))
    out = np.zeros((in_h, in_w), np.float32)
    top, left = (in_h - new_h) // 2, (in_w - new_w) // 2
    out[top:top + new_h, left:left + new_w] = cv2.resize(union, (new_w, new_h), interpolation=cv2.INTER_AREA) >= 0.5
    return out


def encoder_maps(network, samples: list[Sample], progress=None) -> tuple[list[np.ndarray], np.ndarray]:
    """Per stride, (N, 2, C, h, w) float16 maps of each image and its mirror; and (N, 2, H, W) targets."""
    maps, targets = None, np.empty((len(samples), 2, *INPUT.size), np.uint8)
    network.eval()
    with torch.inference_mode():
        for index, sample in enumerate(samples):
            tensor = load_input(sample.image)
            pair = network.encoder.features(torch.cat([tensor, torch.flip(tensor, dims=[3])]))
            if maps is None:
                maps = [np.empty((len(samples), *m.shape), np.float16) for m in pair]
            for store, value in zip(maps, pair):
                store[index] = value.numpy()
            target = target_mask(sample)
            targets[index] = (target, target[:, ::-1])
            if progress:
                progress(index + 1, len(samples))
    return maps, targets


def decode(network, maps: list[torch.Tensor]) -> torch.Tensor:
    *skips, deepest = maps
    y = network.bottleneck(deepest)
    for stage, skip in zip(network.decoder, reversed(skips)):
        y = stage(y, skip)
    return functional.interpolate(network.head(y), size=INPUT.size, mode="bilinear", align_corners=False)


def dice_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    probability = torch.sigmoid(logits)
    overlap = (probability * target).sum((1, 2, 3))
    dice = 1 - (2 * overlap + 1) / (probability.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1)
    return functional.binary_cross_entropy_with_logits(logits, target) + dice.mean()


def train_decoder(maps, targets, indices: np.ndarray, epochs: int = EPOCHS, seed: int = 0, say=print):
    torch.manual_seed(seed)
    network = pretrained_unet()
    trainable = [p for name, p in network.named_parameters() if not name.startswith("encoder.")]
    optimiser = torch.optim.AdamW(trainable, lr=LEARNING_RATE, weight_decay=1e-4)
    steps = epochs * int(np.ceil(len(indices) / BATCH))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, LEARNING_RATE, total_steps=steps, pct_start=0.15)
    rng = np.random.default_rng(seed)
    network.train()
    network.encoder.eval()
    for epoch in range(epochs):
        start, total = time.perf_counter(), 0.0
        order = rng.permutation(indices)
        for first in range(0, len(order), BATCH):
            chosen = np.sort(order[first:first + BATCH])
            mirror = rng.integers(0, 2, len(chosen))
            batch = [torch.from_numpy(np.asarray(m[chosen, mirror], np.float32)) for m in maps]
            target = torch.from_numpy(targets[chosen, mirror].astype(np.float32))[:, None]
            loss = dice_bce(decode(network, batch), target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(chosen)
        say(f"  epoch {epoch + 1}/{epochs}: loss {total / len(indices):.3f} ({time.perf_counter() - start:.0f} s)")
    return network.eval()


def evaluate(network, maps, targets, indices: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict:
    """Dice and IoU per lesion image (mean +/- sd), and the share of normal images with any mask."""
    dice, iou, normal_flagged = [], [], []
    with torch.inference_mode():
        for index in indices:
            batch = [torch.from_numpy(np.asarray(m[index:index + 1, 0], np.float32)) for m in maps]
            predicted = torch.sigmoid(decode(network, batch))[0, 0].numpy() >= threshold
            truth = targets[index, 0] > 0
            if labels[index] == 0:
                normal_flagged.append(bool(predicted.any()))
            elif truth.any():
                d, i = dice_and_iou(predicted, truth)
                dice.append(d)
                iou.append(i)
    return {"lesion_images": len(dice),
            "dice": {"mean": round(float(np.mean(dice)), 4), "sd": round(float(np.std(dice, ddof=1)), 4)},
            "iou": {"mean": round(float(np.mean(iou)), 4), "sd": round(float(np.std(iou, ddof=1)), 4)},
            "normal_images": len(normal_flagged),
            "normal_images_with_any_mask": round(float(np.mean(normal_flagged)), 4) if normal_flagged else None}
