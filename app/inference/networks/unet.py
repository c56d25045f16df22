"""Attention U-Net decoder on an EfficientNet-Lite encoder, for lesion segmentation.

The encoder is the ImageNet-pretrained classifier's feature path (`encoder.*` keys); each skip connection is
gated by the coarser decoder state (Oktay et al. 2018), as in the breast-ultrasound app this grew from.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from app.inference.networks.efficientnet_lite import EfficientNetLite

DECODER_CHANNELS = (128, 64, 32, 16)  # at strides 16, 8, 4, 2 (light at fine strides: CPU-trainable)
BOTTLENECK_CHANNELS = 256


def conv_bn_relu(c_in: int, c_out: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class AttentionGate(nn.Module):
    """Weights a skip map by where the coarser decoder state says the structure is."""

    def __init__(self, skip_channels: int, gate_channels: int) -> None:
        super().__init__()
        inner = max(8, skip_channels // 2)
        self.skip = nn.Conv2d(skip_channels, inner, 1, bias=False)
        self.gate = nn.Conv2d(gate_channels, inner, 1, bias=True)
        self.score = nn.Conv2d(inner, 1, 1, bias=True)

    def forward(self, skip: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        attention = torch.sigmoid(self.score(functional.relu(self.skip(skip) + self.gate(gate))))
        return skip * attention


class DecoderStage(nn.Module):
    def __init__(self, c_in: int, skip_channels: int, c_out: int) -> None:
        super().__init__()
        self.attention = AttentionGate(skip_channels, c_in)
        self.fuse = nn.Sequential(conv_bn_relu(c_in + skip_channels, c_out), conv_bn_relu(c_out, c_out))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = functional.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([x, self.attention(skip, x)], dim=1))


class LiteUNet(nn.Module):
    """Input (N, C, H, W) with H and W multiples of 32; output lesion logits (N, 1, H, W)."""

    def __init__(self, variant: str = "lite0", in_channels: int = 3) -> None:
        super().__init__()
        self.encoder = EfficientNetLite(variant, num_classes=1, in_channels=in_channels)
        del self.encoder._fc, self.encoder._dropout  # the decoder replaces the classifier
        skips = self.encoder.feature_channels[:-1][::-1]
        self.bottleneck = conv_bn_relu(self.encoder.feature_channels[-1], BOTTLENECK_CHANNELS, kernel=1)
        stages, c_in = [], BOTTLENECK_CHANNELS
        for skip_channels, c_out in zip(skips, DECODER_CHANNELS):
            stages.append(DecoderStage(c_in, skip_channels, c_out))
            c_in = c_out
        self.decoder = nn.ModuleList(stages)
        self.head = nn.Conv2d(c_in, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *skips, deepest = self.encoder.features(x)
        y = self.bottleneck(deepest)
        for stage, skip in zip(self.decoder, reversed(skips)):
            y = stage(y, skip)
        return functional.interpolate(self.head(y), size=x.shape[-2:], mode="bilinear", align_corners=False)
