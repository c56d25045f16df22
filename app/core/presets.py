"""Window presets: those the file carries first, then sensible defaults for the modality."""

from __future__ import annotations

from app.core.display import Window, auto_window, full_range_window
from app.core.image import LoadedImage, WindowPreset

MODALITY_PRESETS: dict[str, tuple[WindowPreset, ...]] = {
    "CT": (
        WindowPreset("Soft tissue", Window(40, 400)),
        WindowPreset("Lung", Window(-600, 1500)),
        WindowPreset("Bone", Window(300, 1500)),
        WindowPreset("Brain", Window(40, 80)),
    ),
}


def presets_for(image: LoadedImage) -> tuple[WindowPreset, ...]:
    """File presets, modality presets, then Auto and Full range; the first is the default."""
    info = image.info
    rescale = dict(slope=info.rescale_slope, intercept=info.rescale_intercept)
    if image.is_rgb:
        return (WindowPreset("Full range", Window.from_bounds(0, 255)),)
    auto = auto_window(image.frame(image.frame_count // 2), background_is_max=info.presentation_inverse, **rescale)
    return (
        *info.window_presets,
        *MODALITY_PRESETS.get(info.modality, ()),
        WindowPreset("Auto", auto),
        WindowPreset("Full range", full_range_window(image.stored_range, **rescale)),
    )
