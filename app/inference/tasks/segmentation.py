"""Segmentation: a lesion probability per pixel, shown and written at a threshold; with the package's
`mirror_average` setting, the mean of the image's and its mirror image's probabilities (test-time mirroring)."""

from __future__ import annotations

import cv2
import numpy as np

from app.core.layers import MASK, OverlayLayer, mask_contours
from app.inference.tasks import PanelText, Task, guard_column, half_precision, new_result
from app.inference.visualize import display_rgb, side_by_side


class Segmentation(Task):
    name = "segmentation"

    def run(self, network, device, manifest, image, frame, options):
        import torch

        from app.inference.preprocess import prepare_input

        tensor, geometry = prepare_input(image, frame, manifest.input)
        mirrored = bool(manifest.settings.get("mirror_average", False))
        if mirrored:  # one pass over the image and its mirror image; the mirror's map is mirrored back
            tensor = torch.cat([tensor, tensor.flip(-1)])
        with half_precision(manifest, device):
            with torch.inference_mode():
                maps = torch.sigmoid(network(tensor.to(device)).float())[:, 0]
            probability = ((maps[0] + maps[1].flip(-1)) / 2 if mirrored else maps[0]).cpu().numpy()
        return new_result(manifest, image, device, mask=geometry.to_image(probability),
                          threshold=float(manifest.settings.get("threshold", 0.5)))

    def layers(self, result):
        return [OverlayLayer("Segmentation", MASK, result.image_identity, data=result.mask,
                             threshold=result.threshold, opacity=0.6, source=result.model_key)]

    def csv_row(self, result):
        # p_<class>: the highest lesion probability of any pixel
        return {**guard_column(result), **{f"p_{name}": f"{float(result.mask.max()):.6f}" for name in result.classes},
                "mask_fraction": f"{_fraction(result):.6f}"}

    def files(self, result):
        return {"masks": np.where(result.mask >= result.threshold, 255, 0).astype(np.uint8)}

    def picture(self, image, result, frame=0):
        base = display_rgb(image, frame)
        outlined = base.copy()
        for contour in mask_contours(result.mask, result.threshold):
            cv2.polylines(outlined, [np.round(contour - 0.5).astype(np.int32)], True, (255, 64, 64), 2)
        return side_by_side([("image", base), (f"mask p>={result.threshold:.2f}", outlined)])

    def panel(self, result):
        return PanelText(facts=(("Segmented", f"{_fraction(result) * 100:.1f}% of the image at "
                                              f"p ≥ {result.threshold:.2f}"),))


def _fraction(result) -> float:
    """The share of the image's pixels at or above the threshold."""
    return float((result.mask >= result.threshold).mean())


TASK = Segmentation()
