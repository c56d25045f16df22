"""GLAM (mammography): a score per class, saliency maps of where each class's evidence lies, and the patch
the local network re-read; predict writes GLAM's reference columns when every image is GLAM's."""

from __future__ import annotations

import cv2

from app.core.layers import HEATMAP, PATCHES, OverlayLayer, heatmap_rgba
from app.core.text import printable
from app.inference.manifest import ModelPackageError
from app.inference.tasks import (InferenceError, PanelText, Task, guard_column, new_result, probability_caption,
                                 probability_columns)
from app.inference.visualize import blend, display_rgb, scores_title, side_by_side

SALIENCY_COLOURS = {"benign": "greens", "malignant": "reds"}
COLUMNS = ("image_index", "benign_pred", "malignant_pred", "benign_label", "malignant_label")
# The patch the local network read, image pixels, so localisation can be judged from the file alone.
PATCH_COLUMNS = ("patch_x", "patch_y", "patch_w", "patch_h")


class Glam(Task):
    name = "glam"
    network_may_hold_trunk = False  # its guard, if any, names the trunk in the manifest

    def run(self, network, device, manifest, image, frame, options):
        from app.inference.glam.on_images import calibrated_scores, run_images
        from app.inference.glam.pipeline import GlamSettings

        try:
            settings = GlamSettings.from_dict(manifest.settings.get("glam", {}))
        except (TypeError, ValueError) as error:
            raise ModelPackageError(manifest.folder, f"settings.glam: {error}") from error
        try:
            (out,) = run_images(network, [(image, frame)], settings, device)
        except ValueError as error:  # e.g. no breast found in an empty image
            raise InferenceError(str(error)) from error
        return new_result(manifest, image, device,
                          probabilities=calibrated_scores(out.scores, manifest.settings.get("temperature")),
                          saliency=out.saliency, map_scale=out.map_scale, patches=(out.patch,))

    def layers(self, result):
        made = [OverlayLayer(f"{name.capitalize()} saliency", HEATMAP, result.image_identity, data=values,
                             colormap=SALIENCY_COLOURS.get(name, "viridis"), opacity=0.5, scale=result.map_scale,
                             quantity="saliency (not a probability)",
                             alpha_ramp=1.0,  # as strong as the evidence: faint maps stay faint
                             source=result.model_key)
                for name, values in result.saliency.items()]
        if result.patches:
            made.append(OverlayLayer("Patch map", PATCHES, result.image_identity, boxes=result.patches, opacity=0.9,
                                     source=result.model_key))
        return made

    def csv_row(self, result):
        return {**probability_columns(result), **guard_column(result), **_patch_columns(result)}

    def own_table(self, results, labels):
        rows = []
        for path, result in results:
            benign, malignant = (float(p) for p in result.probabilities)
            row = {"image_index": printable(path.stem), "benign_pred": f"{benign:.6f}",
                   "malignant_pred": f"{malignant:.6f}"}
            if path.stem in labels:
                row["benign_label"], row["malignant_label"] = (str(v) for v in labels[path.stem])
            rows.append({**row, **_patch_columns(result)})
        return [*(COLUMNS if labels else COLUMNS[:3]), *PATCH_COLUMNS], rows

    def picture(self, image, result, frame=0):
        """As GLAM's reference pictures: patch map, benign (greens) and malignant (reds) saliency in [0, 1],
        and the patch itself."""
        base = display_rgb(image, frame)
        boxed = base.copy()
        for box in result.patches:
            cv2.rectangle(boxed, (round(box.x), round(box.y)), (round(box.x + box.width) - 1,
                          round(box.y + box.height) - 1), (255, 210, 0), max(2, base.shape[0] // 300))
        panels = [(scores_title(result), base), ("patch map", boxed)]
        for name, values in result.saliency.items():
            full = cv2.resize(values, (base.shape[1], base.shape[0]), interpolation=cv2.INTER_NEAREST)
            colours = SALIENCY_COLOURS.get(name, "viridis")
            panels.append((f"{name} saliency 0-1", blend(base, heatmap_rgba(full, (0, 1), colours), 0.7)))
        for box in result.patches[:1]:
            x0, y0 = max(round(box.x), 0), max(round(box.y), 0)
            panels.append(("patch", base[y0:y0 + round(box.height), x0:x0 + round(box.width)]))
        return side_by_side(panels)

    def panel(self, result):
        note = ("Saliency maps show, per class, where the model found evidence (0 to 1); the patch map marks the "
                "region the local network re-read." + ("" if result.calibrated else
                                                       " Scores are not calibrated probabilities."))
        caption = (probability_caption(result) if result.calibrated
                   else "score per class (GLAM; not a calibrated probability)")
        return PanelText(notes=(note,) if result.saliency else (), caption=caption)


def _patch_columns(result) -> dict[str, str]:
    if not result.patches:
        return {}
    box = result.patches[0]
    return dict(zip(PATCH_COLUMNS, (f"{v:.0f}" for v in (box.x, box.y, box.width, box.height))))


TASK = Glam()
