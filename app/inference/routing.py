"""Which model reads an image: one rule, used by the window and by `radlens predict`.

1. A model the reader forces (`--model`, or the model chosen in the AI panel where it fits the image).
2. A DICOM modality picks its default model (the first package that claims the modality); a PNG/JPEG
   named as a mammography view (R-CC, 0_L-MLO.png ...) picks the MG model.
3. An image without a modality any model claims (PNG, JPEG, secondary captures) goes to the model whose
   out-of-distribution guard says it resembles that model's training images (all guards scored from one
   shared trunk pass; see trunk.py); to the default model of that model's modality when that one
   accepts it too. No guard accepting it means no model, said plainly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from app.core.image import LoadedImage
from app.inference.manifest import ModelManifest
from app.inference.registry import ModelRegistry

FORCED, MODALITY, RESEMBLANCE, NONE = "forced", "modality", "resemblance", "none"


@dataclass(frozen=True)
class GuardScore:
    distance: float
    limit: float

    @property
    def ratio(self) -> float:
        """Distance over the guard's limit: at most 1 when the image looks like the training images."""
        return self.distance / self.limit if self.limit > 0 else float("inf")


@dataclass(frozen=True)
class Route:
    model: ModelManifest | None
    how: str  # FORCED, MODALITY, RESEMBLANCE or NONE
    reason: str  # one sentence for the panel, the log and stderr
    scores: dict[str, GuardScore] = field(default_factory=dict)  # by model name, when guards were asked


# manifests -> guard score per model key (the engine's `guard_scores` for one image)
GuardScorer = Callable[[list[ModelManifest]], dict[str, GuardScore]]


def choose_model(image: LoadedImage, registry: ModelRegistry, guards: GuardScorer, *,
                 forced: ModelManifest | None = None, preferred: ModelManifest | None = None,
                 forced_by: str = "--model") -> Route:
    """The model for `image` and why. `forced` always wins; `preferred` (the reader's choice in the
    window) wins where it fits the image (no modality, or one it claims)."""
    if forced is not None:
        return Route(forced, FORCED, f"{forced.name} was chosen with {forced_by}.")
    modality = image.info.modality
    if preferred is not None and (not modality or preferred.matches(modality)):
        return Route(preferred, FORCED, f"{preferred.name} was chosen in the AI panel.")
    default = registry.default_for_image(image.info)
    if default is not None and modality:
        return Route(default, MODALITY, f"The file's modality is {modality}; {default.name} is the model for "
                                         f"{modality} images.")
    if default is not None:  # a PNG/JPEG named as a mammography view (R-CC, 0_L-MLO.png ...)
        return Route(default, MODALITY, f"The file is named as a mammography view; {default.name} is the model "
                                         "for MG images.")
    said = f"The file's modality ({modality}) is one no model reads" if modality else "The file names no modality"
    guarded = [m for m in registry.models if m.ood]
    if not guarded:
        return Route(None, NONE, f"{said}, and no installed model carries a guard to recognise the image; "
                                 "choose a model.")
    scores = guards(guarded)
    by_name = {m.name: scores[m.key] for m in guarded if m.key in scores}
    ranked = sorted((score.ratio, m.name, m) for m in guarded if (score := scores.get(m.key)) is not None)
    if not ranked or ranked[0][0] > 1.0:
        closest = f" (closest: {ranked[0][1]}, at {ranked[0][0]:.1f} times its limit)" if ranked else ""
        return Route(None, NONE, f"{said}, and it does not resemble the training images of any installed "
                                 f"model{closest}; choose a model.", by_name)
    ratio, _, best = ranked[0]
    default = registry.default_for(best.modalities[0]) if best.modalities else None
    if default is not None and default is not best and by_name.get(default.name, GuardScore(2, 1)).ratio <= 1.0:
        best = default
    reason = f"{said}; the image resembles the training images of {ranked[0][1]} ({ratio:.2f} of its guard's limit)"
    if best.name != ranked[0][1]:
        reason += f"; {best.name} is the model for {best.modalities[0]} images"
    return Route(best, RESEMBLANCE, reason + ".", by_name)

