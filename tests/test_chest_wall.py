"""One truth for where a mammogram's chest wall is: the hanging turns and GLAM crops by the same answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.core.hanging import reading_flips, stored_chest_wall_side
from app.core.image import ImageInfo, LoadedImage
from app.inference.glam.crop import CropSettings
from app.inference.glam.on_images import prepare_image
from app.inference.glam.pipeline import GlamSettings


def right_cc(stored_mirrored: bool) -> LoadedImage:
    """A right CC view: breast tissue against the chest wall, which is on the image's right unless the
    file stores the view mirrored (and says so in Patient Orientation: rows run towards A, not P)."""
    pixels = np.zeros((200, 120), np.uint16)
    yy, xx = np.mgrid[:200, :120]
    wall = 0 if stored_mirrored else 119
    pixels[(yy - 100) ** 2 + (xx - wall) ** 2 < 80 ** 2] = 3000
    orientation = ("A", "R") if stored_mirrored else ("P", "L")
    info = ImageInfo(path=Path("/nowhere/rcc.dcm"), source_format="dicom", modality="MG", laterality="R", view="CC",
                     patient_orientation=orientation, rows=200, columns=120, sop_uid=f"rcc-{stored_mirrored}")
    return LoadedImage(info=info, frames=pixels[None])


@pytest.mark.parametrize("mirrored", [False, True])
def test_a_right_view_stored_mirrored_is_turned_by_the_hanging_and_cropped_by_glam_alike(mirrored):
    image = right_cc(mirrored)
    flip_h, _ = reading_flips(image.info, image.frame(0))
    assert flip_h is mirrored  # the hanging turns the mirrored file round
    assert stored_chest_wall_side(image.info, image.frame(0)) == ("left" if mirrored else "right")
    settings = GlamSettings(window=(128, 80), patch=32, crop=CropSettings(erode_iterations=2, buffer=2))
    view = prepare_image(image, settings)
    # GLAM mirrors a crop whose chest wall is on the right, so that every chest wall is at x = 0
    assert view.placement.crop.mirrored is (not mirrored)
    assert view.window[:, :4].mean() > view.window[:, -4:].mean()  # tissue against the chest wall at x = 0


def test_no_laterality_no_stored_side():
    image = right_cc(False)
    info = ImageInfo(path=image.info.path, source_format="png", rows=200, columns=120)
    assert stored_chest_wall_side(info, image.frame(0)) is None
