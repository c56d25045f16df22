"""The explanation methods, one table: key -> method, each with the name the window, the results and the
pictures show, and how it weighs a layer's activations by their gradients.

Tensor methods only and no torch import, so that the window can offer the choices before torch is loaded.
"""

from __future__ import annotations

EPSILON = 1e-6


class GradCam:
    """Selvaraju et al. 2017: channels weighted by their mean gradient."""

    name = "Grad-CAM"

    def __call__(self, activations, gradients):
        weights = gradients.mean(dim=(-2, -1), keepdim=True)
        return (weights * activations).sum(dim=-3).relu()


class GradCamPlusPlus:
    """Chattopadhay et al. 2018: pixel-wise weights from second and third powers of the gradient."""

    name = "Grad-CAM++"

    def __call__(self, activations, gradients):
        squared, cubed = gradients ** 2, gradients ** 3
        totals = activations.sum(dim=(-2, -1), keepdim=True)
        alpha = squared / (2 * squared + totals * cubed + EPSILON)
        alpha = alpha.masked_fill(gradients == 0, 0.0)
        weights = (alpha * gradients.relu()).sum(dim=(-2, -1), keepdim=True)
        return (weights * activations).sum(dim=-3).relu()


EXPLANATION_METHODS = {"gradcam": GradCam(), "gradcam++": GradCamPlusPlus()}
