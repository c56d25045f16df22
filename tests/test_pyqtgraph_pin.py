"""The viewport overrides pyqtgraph's private ImageItem.render(): pyqtgraph is pinned below its next minor
version, and what the override relies on is checked here, so an upgrade fails a test, not a reading."""

from __future__ import annotations

import inspect
import re
import tomllib
from pathlib import Path

import pyqtgraph as pg

ROOT = Path(__file__).resolve().parents[1]


def test_pyqtgraph_is_pinned_below_its_next_minor_and_the_installed_one_is_inside_the_pin():
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pin = next(d for d in dependencies if d.startswith("pyqtgraph"))
    lower, upper = re.fullmatch(r"pyqtgraph>=([\d.]+),<([\d.]+)", pin).groups()
    installed = tuple(int(part) for part in pg.__version__.split(".")[:3] if part.isdigit())
    assert tuple(map(int, lower.split("."))) <= installed < tuple(map(int, upper.split(".")))


def test_the_private_members_the_render_override_uses_are_there():
    from app.ui.viewport_widget import NotifyingImageItem

    assert "render" in vars(pg.ImageItem) and not inspect.signature(pg.ImageItem.render).parameters.keys() - {"self"}
    assert callable(getattr(pg.ImageItem, "_computeDownsampleFactors", None))
    source = inspect.getsource(pg.ImageItem.render)
    assert "_lastDownsample" in source and "autoDownsample" in source
    assert NotifyingImageItem.render is not pg.ImageItem.render
