"""The frozen build, when there is one (`python3 packaging/build.py` makes dist/RadLens): the smoke test,
network blocked. Skipped otherwise, as in CI, which never builds installers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "dist" / ("RadLens.app" if sys.platform == "darwin" else "RadLens")


@pytest.mark.skipif(not BUNDLE.is_dir(), reason="no frozen build in dist/ (python3 packaging/build.py)")
def test_frozen_app_passes_its_smoke_test_offline():
    sys.path.insert(0, str(ROOT / "packaging"))
    from smoke_test import smoke_test

    assert smoke_test(BUNDLE, block_network=True) == []
