"""The real mammograms in ../shared open correctly (skipped when ../shared is absent)."""

import numpy as np
import pytest

from app.core.hanging import hang, reading_flips
from app.io.study_loader import decode_study, scan


def test_glam_sample_exam_opens_as_a_four_view_16_bit_study(shared_datasets):
    result = scan([shared_datasets / "glam_sample" / "images"])
    assert not result.problems and len(result.studies) == 1
    study = result.studies[0]
    hanging = hang(study)
    assert hanging.is_four_view and all(c.series is not None for c in hanging.cells)
    sizes = {"L CC": (2023, 801), "R CC": (2144, 801), "L MLO": (2730, 981), "R MLO": (2650, 1006)}
    for series, image, problems in decode_study(study):
        assert not problems
        assert image.frames.dtype == np.uint16 and image.stored_range[1] == 4095
        assert (image.height, image.width) == sizes[series.label]
        flip_h, _ = reading_flips(image.info, image.frame(0))
        frame = image.frame(0)[:, ::-1] if flip_h else image.frame(0)
        strip = frame.shape[1] // 10
        inner = frame[:, -strip:] if image.info.laterality == "R" else frame[:, :strip]
        outer = frame[:, :strip] if image.info.laterality == "R" else frame[:, -strip:]
        assert inner.mean() > 3 * outer.mean(), f"{series.label}: chest wall is not on the inner side"


@pytest.mark.parametrize("name", ["mdb001.png", "mdb002.png", "mdb028.png"])
def test_mias_pngs_open(shared_datasets, name):
    path = shared_datasets / "mias" / "images" / name
    if not path.exists():
        pytest.skip(f"{name} not present")
    study = scan([path]).studies[0]
    (series, image, problems), = list(decode_study(study))
    assert not problems and (image.height, image.width) == (1024, 1024) and image.frames.dtype == np.uint8
