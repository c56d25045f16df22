"""The GLAM networks, with the parameter names of the official checkpoints.

Global network: a pre-activation ResNet (five stages of two blocks, 16..256 channels) whose three
1x1 heads turn stage 3, stage 4 and the final features into benign/malignant maps. Local network:
a ResNet-34 whose stages never downsample, read on one patch, with a 1x1 head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

GLOBAL_CHANNELS = (16, 32, 64, 128, 256)
GLOBAL_STRIDES = (1, 2, 2, 2, 2)
SALIENCY_STRIDE = 16  # input pixels per cell of the global saliency grid (stage 3)
HEAD_WEIGHTS = (0.2, 0.6, 0.2)  # stage 3, stage 4, last
LOCAL_BLOCKS = (3, 4, 6, 3)
LOCAL_CHANNELS = (64, 128, 256, 512)
LOCAL_STRIDE = 4  # patch pixels per cell of the local map
# The global network's stem max-pool (3x3, stride 2) pads by 0 in the reference implementation: on a
# 2944 x 1920 window the 7x7/2 convolution gives 1472 x 960 and the pool 735 x 479 (736 x 480 with
# padding 1; the two grids meet again at 184 x 120 after stage 3, so no shape check sees the
# difference, but every map and the selected patch do). Packages trained with padding 1
# (the retired mg-glam-mias was) say so in their network spec: {"type": "glam", "stem_pool_padding": 1}.
OFFICIAL_STEM_POOL_PADDING = 0


class PreActBlock(nn.Module):
    def __init__(self, inputs: int, outputs: int, stride: int, project: bool) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inputs)
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.downsample = nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False)) if project else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = F.relu(self.bn1(x))
        shortcut = self.downsample(activated) if self.downsample is not None else x
        return self.conv2(F.relu(self.bn2(self.conv1(activated)))) + shortcut


class DownsamplingBranch(nn.Module):
    def __init__(self, stem_pool_padding: int = OFFICIAL_STEM_POOL_PADDING) -> None:
        super().__init__()
        if stem_pool_padding not in (0, 1):
            raise ValueError(f"stem_pool_padding must be 0 (official) or 1, got {stem_pool_padding!r}")
        self.stem_pool_padding = stem_pool_padding
        self.first_conv = nn.Conv2d(1, GLOBAL_CHANNELS[0], 7, 2, 3, bias=False)
        self.layer_list = nn.ModuleList()
        inputs = GLOBAL_CHANNELS[0]
        for outputs, stride in zip(GLOBAL_CHANNELS, GLOBAL_STRIDES):
            self.layer_list.append(nn.Sequential(PreActBlock(inputs, outputs, stride, project=True),
                                                 PreActBlock(outputs, outputs, 1, project=False)))
            inputs = outputs
        self.final_bn = nn.BatchNorm2d(inputs)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(stage 3 output, stage 4 output, final activated features)."""
        x = F.max_pool2d(self.first_conv(x), 3, 2, self.stem_pool_padding)
        outputs = []
        for stage in self.layer_list:
            x = stage(x)
            outputs.append(x)
        return outputs[2], outputs[3], F.relu(self.final_bn(x))


class PostprocessModule(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gn_conv_1 = nn.Conv2d(GLOBAL_CHANNELS[2], 2, 1, bias=False)
        self.gn_conv_2 = nn.Conv2d(GLOBAL_CHANNELS[3], 2, 1, bias=False)
        self.gn_conv_last = nn.Conv2d(GLOBAL_CHANNELS[4], 2, 1, bias=False)
        self.combine = nn.Conv2d(6, 2, 1, bias=False)  # in the checkpoints, unused by the method


class GlobalNetwork(nn.Module):
    def __init__(self, stem_pool_padding: int = OFFICIAL_STEM_POOL_PADDING) -> None:
        super().__init__()
        self.downsampling_branch = DownsamplingBranch(stem_pool_padding)
        self.postprocess_module = PostprocessModule()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Three (N, 2, H/16, W/16) sigmoid maps: from stage 3, stage 4 and the last features."""
        stage3, stage4, last = self.downsampling_branch(x)
        heads = self.postprocess_module
        size = stage3.shape[-2:]
        x1 = torch.sigmoid(heads.gn_conv_1(stage3))
        x2 = torch.sigmoid(F.interpolate(heads.gn_conv_2(stage4), size=size, mode="nearest"))
        x3 = torch.sigmoid(F.interpolate(heads.gn_conv_last(last), size=size, mode="nearest"))
        return x1, x2, x3


class BasicBlock(nn.Module):
    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.downsample = (nn.Sequential(nn.Conv2d(inputs, outputs, 1, bias=False), nn.BatchNorm2d(outputs))
                           if inputs != outputs else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.downsample(x) if self.downsample is not None else x
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + shortcut)


class LocalResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, LOCAL_CHANNELS[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(LOCAL_CHANNELS[0])
        inputs = LOCAL_CHANNELS[0]
        for index, (blocks, outputs) in enumerate(zip(LOCAL_BLOCKS, LOCAL_CHANNELS), start=1):
            setattr(self, f"layer{index}", nn.Sequential(*[BasicBlock(inputs if b == 0 else outputs, outputs)
                                                           for b in range(blocks)]))
            inputs = outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class LocalNetwork(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dn_resnet = LocalResNet()
        self.gn_conv_last = nn.Conv2d(LOCAL_CHANNELS[-1], 2, 1, bias=False)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """(N, 1, P, P) standardised patches -> (N, 2, P/4, P/4) sigmoid maps."""
        return torch.sigmoid(self.gn_conv_last(self.dn_resnet(patches.expand(-1, 3, -1, -1))))


class GlamNetwork(nn.Module):
    """Both networks under the names of the official joint checkpoint."""

    def __init__(self, stem_pool_padding: int = OFFICIAL_STEM_POOL_PADDING) -> None:
        super().__init__()
        self.global_network = GlobalNetwork(stem_pool_padding)
        self.detection_network = LocalNetwork()
