"""Colour maps for overlay layers as 256-entry RGB tables, built from anchor colours.

viridis and cividis are colour-blind safe (CC0 maps by van der Walt, Smith and Nuñez); 'reds'
and 'greens' are the single-hue maps of GLAM's malignant and benign saliency.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

ANCHORS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "viridis": ((68, 1, 84), (72, 40, 120), (62, 74, 137), (49, 104, 142), (38, 130, 142), (31, 158, 137),
                (53, 183, 121), (109, 205, 89), (180, 222, 44), (253, 231, 37)),
    "cividis": ((0, 34, 78), (18, 53, 112), (59, 73, 108), (87, 92, 109), (112, 113, 115), (138, 134, 120),
                (165, 156, 116), (193, 180, 105), (223, 205, 88), (254, 232, 56)),
    "inferno": ((0, 0, 4), (31, 12, 72), (85, 15, 109), (136, 34, 106), (186, 54, 85), (227, 89, 51),
                (249, 140, 10), (249, 201, 50), (252, 255, 164)),
    "jet": ((0, 0, 128), (0, 0, 255), (0, 128, 255), (0, 255, 255), (128, 255, 128), (255, 255, 0),
            (255, 128, 0), (255, 0, 0), (128, 0, 0)),
    "reds": ((255, 245, 240), (252, 187, 161), (251, 106, 74), (203, 24, 29), (103, 0, 13)),
    "greens": ((247, 252, 245), (199, 233, 192), (116, 196, 118), (35, 139, 69), (0, 68, 27)),
}
COLOUR_BLIND_SAFE = ("viridis", "cividis")
NAMES = tuple(ANCHORS)


@lru_cache(maxsize=None)
def colormap_table(name: str) -> np.ndarray:
    """(256, 3) uint8 colours from low to high."""
    if name not in ANCHORS:
        raise ValueError(f"unknown colour map {name!r}; choose one of {', '.join(NAMES)}")
    anchors = np.asarray(ANCHORS[name], dtype=np.float64)
    positions = np.linspace(0.0, 1.0, len(anchors))
    steps = np.linspace(0.0, 1.0, 256)
    table = np.stack([np.interp(steps, positions, anchors[:, c]) for c in range(3)], axis=1)
    table = np.rint(table).astype(np.uint8)
    table.setflags(write=False)
    return table
