"""Render resources/radlens.svg into the icons installers need: radlens.png (Linux), .ico (Windows), .icns (macOS).

Run after changing the SVG: `.venv/bin/python packaging/make_icons.py`; the results are committed.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

from PIL import Image

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
SIZE = 1024


def render_svg(path: Path, size: int) -> Image.Image:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtCore, QtGui, QtSvg

    app = QtGui.QGuiApplication.instance() or QtGui.QGuiApplication(sys.argv[:1])  # noqa: F841 (keeps Qt alive)
    image = QtGui.QImage(size, size, QtGui.QImage.Format.Format_ARGB32)
    image.fill(QtCore.Qt.GlobalColor.transparent)
    painter = QtGui.QPainter(image)
    QtSvg.QSvgRenderer(str(path)).render(painter)
    painter.end()
    buffer = QtCore.QBuffer()
    buffer.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return Image.open(io.BytesIO(bytes(buffer.data()))).convert("RGBA")


def main() -> None:
    icon = render_svg(RESOURCES / "radlens.svg", SIZE)
    icon.resize((256, 256), Image.LANCZOS).save(RESOURCES / "radlens.png")
    icon.save(RESOURCES / "radlens.ico", sizes=[(16, 16), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)])
    icon.save(RESOURCES / "radlens.icns")
    for name in ("radlens.png", "radlens.ico", "radlens.icns"):
        print(f"{RESOURCES / name}: {(RESOURCES / name).stat().st_size} bytes")


if __name__ == "__main__":
    main()
