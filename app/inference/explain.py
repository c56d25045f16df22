"""Class activation maps for any set of layers from ONE forward and ONE backward pass.

Forward hooks keep each chosen layer's output; a single `torch.autograd.grad` of the target class's logit
returns the gradients of all of them at once, without computing gradients of the parameters. The
hooks live only inside the `with CamExplainer(...)` block, so the network is left as it was found.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from app.inference.cam_methods import GradCam


@dataclass(frozen=True)
class Explanation:
    logits: np.ndarray  # (classes,)
    target_class: int  # the class the maps explain
    maps: dict[str, np.ndarray]  # module name -> (h, w) map at that layer's resolution, >= 0


class CamExplainer:
    """`with CamExplainer(net, ["_blocks.10", "_head_activation"]) as cam: result = cam(image_tensor)`."""

    def __init__(self, network: nn.Module, module_names: list[str], method=None) -> None:
        modules = dict(network.named_modules())
        unknown = [name for name in module_names if name not in modules]
        if unknown:
            raise ValueError(f"the network has no layer {unknown[0]!r}")
        self.network, self.module_names = network, list(dict.fromkeys(module_names))
        self.method = method or GradCam()
        self._modules = [modules[name] for name in self.module_names]
        self._handles: list = []
        self._activations: dict[str, torch.Tensor] = {}

    def __enter__(self) -> CamExplainer:
        for name, module in zip(self.module_names, self._modules):
            self._handles.append(module.register_forward_hook(self._keeper(name)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._activations.clear()

    def _keeper(self, name: str):
        def keep(_module, _inputs, output):
            self._activations[name] = output

        return keep

    def __call__(self, image: torch.Tensor, target_class: int | None = None) -> Explanation:
        if not self._handles:
            raise RuntimeError("use CamExplainer inside a `with` block")
        if image.shape[0] != 1:
            raise ValueError("CamExplainer explains one image at a time")
        self._activations.clear()
        with torch.enable_grad():
            logits = self.network(image.detach().requires_grad_(True))
            target = int(logits[0].argmax()) if target_class is None else int(target_class)
            if not 0 <= target < logits.shape[1]:
                raise ValueError(f"class {target} is not one of the model's {logits.shape[1]} classes")
            activations = [self._activations[name] for name in self.module_names]
            gradients = torch.autograd.grad(logits[0, target], activations)
        with torch.no_grad():
            maps = {name: self.method(a.float()[0], g.float()[0]).cpu().numpy().astype(np.float32)
                    for name, a, g in zip(self.module_names, activations, gradients)}
        self._activations.clear()
        return Explanation(logits=logits.detach().float()[0].cpu().numpy(), target_class=target, maps=maps)
