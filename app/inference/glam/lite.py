"""GLAM-Lite: the GLAM global-local method on ImageNet EfficientNet-Lite trunks (package network type "glam-lite").

It answers the GLAM pipeline exactly as `GlamNetwork` does, so cropping, windowing, top-t pooling,
patch selection, fusion and the viewer's layers are shared:

- `global_network(window)` -> three (N, 2, H/16, W/16) sigmoid maps (benign, malignant): from the
  stride-16 features, from those features joined with the upsampled stride-32 head, and from the
  stride-32 head alone (GLAM's three heads, weighted 0.2 / 0.6 / 0.2 by the pipeline);
- `detection_network(patch)` -> (N, 2, P/4, P/4) sigmoid maps from a second trunk cut after its
  stride-16 stage (stride-8 and stride-16 features joined, upsampled to the 4-pixel grid).

Both trunks read one grey channel: the ImageNet stem's three colour filters are summed, which is
exactly the ImageNet network on a grey image copied into R, G and B.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from app.inference.networks.efficientnet_lite import VARIANTS, EfficientNetLite

FUSED_CHANNELS = 128  # the stride-32 head is reduced to this before it joins the stride-16 features


class LiteTrunk(nn.Module):
    """An EfficientNet-Lite on one grey channel; `stages` (4 or 5 = through the stride-16 stage, 7 = all,
    with the 1x1 head) says how much of it is kept. Parameter names are efficientnet_pytorch's, under
    `trunk.`."""

    def __init__(self, variant: str, stages: int) -> None:
        super().__init__()
        self.trunk = EfficientNetLite(variant, num_classes=1, in_channels=1)
        self.trunk._fc = nn.Identity()
        self.trunk._dropout = nn.Identity()
        self.full = stages == 7
        keep = self.trunk.stage_ends[4] + 1 if not self.full else len(self.trunk._blocks)
        self.trunk._blocks = self.trunk._blocks[:keep]
        if not self.full:
            del self.trunk._conv_head, self.trunk._bn1, self.trunk._head_activation
        self.channels = {8: self.trunk.feature_channels[2], 16: self.trunk.feature_channels[3],
                         32: self.trunk.feature_channels[4]}

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """Feature maps by stride: 8 and 16, and 32 (the activated 1x1 head) when the trunk is full."""
        trunk = self.trunk
        end = trunk.stage_ends[4]
        out = {}
        x = F.relu6(trunk._bn0(trunk._conv_stem(x)))
        for number, block in enumerate(trunk._blocks[:end + 1]):
            x = block(x)
            if number == trunk.stage_ends[2]:
                out[8] = x
        out[16] = x
        if self.full:
            out[32] = self.after_16(x)
        return out

    def after_16(self, x: torch.Tensor) -> torch.Tensor:
        """The stride-32 head from the stride-16 features (the full trunk's last stages)."""
        trunk = self.trunk
        for block in trunk._blocks[trunk.stage_ends[4] + 1:]:
            x = block(x)
        return trunk._head_activation(trunk._bn1(trunk._conv_head(x)))

    def load_imagenet(self, weights: Path) -> None:
        """Start from the ImageNet weights (efficientnet_pytorch names), the stem summed over its colours;
        every kept tensor must be there with its shape."""
        state = torch.load(weights, map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
        state["_conv_stem.weight"] = state["_conv_stem.weight"].sum(1, keepdim=True)
        own = self.trunk.state_dict()
        missing = [k for k in own if k not in state or state[k].shape != own[k].shape]
        if missing:
            raise ValueError(f"ImageNet weights {weights.name} do not fit this trunk: {missing[:3]}")
        self.trunk.load_state_dict({k: state[k] for k in own}, strict=True)


class LiteGlobalNetwork(nn.Module):
    def __init__(self, variant: str) -> None:
        super().__init__()
        self.encoder = LiteTrunk(variant, 7)
        c16, c32 = self.encoder.channels[16], self.encoder.channels[32]
        self.head_16 = nn.Conv2d(c16, 2, 1)
        self.head_32 = nn.Conv2d(c32, 2, 1)
        self.reduce_32 = nn.Sequential(nn.Conv2d(c32, FUSED_CHANNELS, 1, bias=False), nn.BatchNorm2d(FUSED_CHANNELS),
                                       nn.ReLU(inplace=True))
        self.head_fused = nn.Sequential(nn.Conv2d(c16 + FUSED_CHANNELS, FUSED_CHANNELS, 3, padding=1, bias=False),
                                        nn.BatchNorm2d(FUSED_CHANNELS), nn.ReLU(inplace=True),
                                        nn.Conv2d(FUSED_CHANNELS, 2, 1))
        for head in (self.head_16, self.head_32, self.head_fused[-1]):
            nn.init.constant_(head.bias, -4.0)  # maps start near 0: lesions are small and rare

    def logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The three maps before the sigmoid, all on the stride-16 grid."""
        return self.maps(self.encoder(x))

    def maps(self, features: dict[int, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f16 = features[16]
        f32 = features[32] if 32 in features else self.encoder.after_16(f16)
        size = f16.shape[-2:]
        up = F.interpolate(self.reduce_32(f32), size=size, mode="bilinear", align_corners=False)
        x1 = self.head_16(f16)
        x2 = self.head_fused(torch.cat([f16, up], 1))
        x3 = F.interpolate(self.head_32(f32), size=size, mode="bilinear", align_corners=False)
        return x1, x2, x3

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return tuple(torch.sigmoid(m) for m in self.logits(x))


class LiteLocalNetwork(nn.Module):
    def __init__(self, variant: str) -> None:
        super().__init__()
        self.encoder = LiteTrunk(variant, 5)
        c8, c16 = self.encoder.channels[8], self.encoder.channels[16]
        self.head = nn.Sequential(nn.Conv2d(c8 + c16, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64),
                                  nn.ReLU(inplace=True), nn.Conv2d(64, 2, 1))
        nn.init.constant_(self.head[-1].bias, -4.0)

    def logits(self, patches: torch.Tensor) -> torch.Tensor:
        """(N, 2, P/4, P/4) before the sigmoid."""
        return self.maps(self.encoder(patches))

    def maps(self, features: dict[int, torch.Tensor]) -> torch.Tensor:
        f8 = features[8]
        up = F.interpolate(features[16], size=f8.shape[-2:], mode="bilinear", align_corners=False)
        return F.interpolate(self.head(torch.cat([f8, up], 1)), scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(patches))


class GlamLiteNetwork(nn.Module):
    """Both networks under the names the GLAM pipeline calls (`global_network`, `detection_network`)."""

    def __init__(self, variant: str = "lite0", local_variant: str | None = None) -> None:
        super().__init__()
        for name in (variant, local_variant or variant):
            if name not in VARIANTS:
                raise ValueError(f"glam-lite variant must be one of {', '.join(VARIANTS)}, got {name!r}")
        self.variant, self.local_variant = variant, local_variant
        self.global_network = LiteGlobalNetwork(variant)
        self.detection_network = LiteLocalNetwork(local_variant or variant)

    def load_imagenet(self, global_weights: Path, local_weights: Path | None = None) -> None:
        self.global_network.encoder.load_imagenet(global_weights)
        self.detection_network.encoder.load_imagenet(local_weights or global_weights)


def ood_layer(network: GlamLiteNetwork) -> str:
    """The module whose pooled output feeds the out-of-distribution guard: the global trunk's 1x1 head
    (1280 features). Measured on mg-glam-lite: it puts every breast ultrasound tried outside the limit,
    the stride-4, 8 and 16 stages left about half of them inside."""
    return "global_network.encoder.trunk._head_activation"
