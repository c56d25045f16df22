"""Classification: class probabilities, and class activation maps of the layers the reader chose."""

from __future__ import annotations

import numpy as np

from app.core.layers import HEATMAP, OverlayLayer, heatmap_rgba
from app.inference.cam_methods import EXPLANATION_METHODS
from app.inference.tasks import (InferenceError, PanelText, Task, guard_column, half_precision, mask_fact, mask_file,
                                 mask_fraction, mask_layer, mask_outlined, new_result, probability_caption,
                                 probability_columns)
from app.inference.visualize import blend, display_rgb, scores_title, side_by_side


class Classification(Task):
    name = "classification"

    def run(self, network, device, manifest, image, frame, options):
        import torch

        from app.inference.preprocess import prepare_input

        tensor, geometry = prepare_input(image, frame, manifest.input)
        tensor = tensor.to(device)
        labels = (manifest.default_explain_layer,) if options.layers is None else options.layers
        labels = tuple(label for label in labels if label)
        unknown = [label for label in labels if label not in manifest.explain_layers]
        if unknown:
            raise InferenceError(f"{manifest.name} has no explainable layer {unknown[0]!r} "
                                 f"(it has {', '.join(manifest.explain_layers)})")
        temperature = float(manifest.settings.get("temperature", 1.0))
        with half_precision(manifest, device):
            if not labels:
                with torch.inference_mode():
                    logits = network(tensor)
                probabilities = torch.softmax(logits.float() / temperature, dim=1)[0].cpu().numpy()
                return new_result(manifest, image, device, probabilities=probabilities,
                                  target_class=int(np.argmax(probabilities)))
            from app.inference.explain import CamExplainer

            method = EXPLANATION_METHODS.get(options.method)
            if method is None:
                raise InferenceError(f"unknown explanation method {options.method!r}")
            modules = [manifest.explain_layers[label] for label in labels]
            with CamExplainer(network, modules, method=method) as explainer:
                explained = explainer(tensor, target_class=options.target_class)
            logits = torch.as_tensor(explained.logits).float().reshape(1, -1)
            probabilities = torch.softmax(logits / temperature, dim=1)[0].cpu().numpy()
        heatmaps = {label: _rescaled01(geometry.to_image(np.asarray(explained.maps[module])))
                    for label, module in zip(labels, modules)}
        return new_result(manifest, image, device, probabilities=probabilities,
                          target_class=int(explained.target_class), method=method.name, heatmaps=heatmaps)

    def layers(self, result):
        target = result.classes[result.target_class] if result.target_class is not None else ""
        heatmaps = [OverlayLayer(f"{result.method} {label} ({target})", HEATMAP, result.image_identity, data=values,
                                 relative=True, colormap="viridis", opacity=0.5, source=result.model_key)
                    for label, values in result.heatmaps.items()]
        return heatmaps + ([mask_layer(result)] if result.mask is not None else [])

    def csv_row(self, result):
        # a package with a lesion mask (runner.py) adds its share of the image; empty where the mask was withheld
        mask = {"mask_fraction": f"{mask_fraction(result):.6f}"} if result.mask is not None else (
            {"mask_fraction": ""} if result.mask_note else {})
        return {**probability_columns(result), **mask, **guard_column(result)}

    def files(self, result):
        return {"masks": mask_file(result)} if result.mask is not None else {}

    def picture(self, image, result, frame=0):
        base = display_rgb(image, frame)
        mask = [(f"mask p>={result.threshold:.2f}", mask_outlined(base, result))] if result.mask is not None else []
        return side_by_side([(scores_title(result), base),
                             *((f"{result.method} {label} (relative)",
                                blend(base, heatmap_rgba(values, (0, 1), "viridis"), 0.6))
                               for label, values in result.heatmaps.items()), *mask])

    def panel(self, result):
        notes = ("Heatmaps are relative (scaled to their own maximum): they show where the model looked, "
                 "not a probability.",) if result.heatmaps else ()
        if result.mask is not None:
            facts = (mask_fact(result),)
        else:
            facts = (("Lesion mask", f"none: {result.mask_note}"),) if result.mask_note else ()
        return PanelText(notes=notes, caption=probability_caption(result), facts=facts)


def _rescaled01(values: np.ndarray) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    return ((values - lo) / (hi - lo)).astype(np.float32) if hi > lo else np.zeros_like(values, np.float32)


TASK = Classification()
