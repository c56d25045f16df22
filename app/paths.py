"""Where bundled files are: one helper that works from a source checkout and from a frozen build."""

from __future__ import annotations

import sys
from pathlib import Path


def install_root() -> Path:
    """The folder holding `resources/` and `models/`: the checkout, or PyInstaller's bundle folder."""
    frozen_root = getattr(sys, "_MEIPASS", None)
    return Path(frozen_root) if frozen_root else Path(__file__).resolve().parent.parent


def resource_path(name: str) -> Path:
    return install_root() / "resources" / name
