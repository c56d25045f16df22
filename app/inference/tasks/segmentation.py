"""Segmentation: a lesion probability per pixel, shown and written at a threshold; with the package's
`mirror_average` setting, the mean of the image's and its mirror image's probabilities (test-time mirroring)."""

from __future__ import annotations

from app.inference.tasks import (PanelText, Task, guard_column, half_precision, mask_fact, mask_file, mask_fraction,
                                 mask_layer, mask_outlined, new_result)
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
        return [mask_layer(result)]

    def csv_row(self, result):
        # p_<class>: the highest lesion probability of any pixel
        return {**guard_column(result), **{f"p_{name}": f"{float(result.mask.max()):.6f}" for name in result.classes},
                "mask_fraction": f"{mask_fraction(result):.6f}"}

    def files(self, result):
        return {"masks": mask_file(result)}

    def picture(self, image, result, frame=0):
        base = display_rgb(image, frame)
        return side_by_side([("image", base), (f"mask p>={result.threshold:.2f}", mask_outlined(base, result))])

    def panel(self, result):
        return PanelText(facts=(mask_fact(result),))


TASK = Segmentation()
