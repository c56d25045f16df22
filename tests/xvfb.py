"""A real X server for tests: Xvfb (installed from Debian when missing) and what its screen shows.

`ensure_xvfb()` installs Xvfb and the libraries Qt's X11 plugin loads (the list the app itself checks,
`app.ui.application.XCB_LIBRARIES`) with apt-get when they are missing and this process may.
`XvfbServer` starts one Xvfb on a display number it picks, with its frame buffer mapped to a file, so
`screen()` reads the pixels X shows, as another program on that desktop would see them, not what a
widget renders for itself.
"""

from __future__ import annotations

import ctypes.util
import os
import shutil
import struct
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

SCREEN = (1920, 1080)
START_TIMEOUT_S = 20.0


def _libraries() -> dict[str, str]:
    from app.ui.application import XCB_LIBRARIES

    return XCB_LIBRARIES


def _present() -> bool:
    return bool(shutil.which("Xvfb")) and all(ctypes.util.find_library(lib) for lib in _libraries())


@lru_cache(maxsize=1)
def ensure_xvfb() -> str | None:
    """None when Xvfb and Qt's X11 libraries are installed (installing them if need be), else why not."""
    from tests.apt import install

    return install(("xvfb", *_libraries().values()), _present)


class XvfbServer:
    """One Xvfb (no TCP, no window manager); `display` is what DISPLAY takes, `screen()` its pixels."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="radlens-xvfb-"))
        read, write = os.pipe()
        width, height = SCREEN
        self.process = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write), "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp",
             "-fbdir", str(self.folder)], pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(write)
        with os.fdopen(read) as numbers:  # Xvfb writes its display number once it accepts clients
            number = numbers.readline().strip()
        if not number:
            self.stop()
            raise RuntimeError("Xvfb did not start")
        self.display = f":{number}"

    def screen(self) -> np.ndarray:
        """The screen as height x width x 3 RGB bytes, read from Xvfb's XWD frame buffer file."""
        data = (self.folder / "Xvfb_screen0").read_bytes()
        fields = struct.unpack(">25I", data[:100])
        header, width, height, bits, stride, colours = fields[0], fields[4], fields[5], fields[11], fields[12], fields[19]
        if bits != 32 or fields[7] != 0:  # 24-bit colour is stored as 32-bit little-endian BGRX here
            raise RuntimeError(f"unexpected Xvfb frame buffer: {bits} bits per pixel, byte order {fields[7]}")
        start = header + colours * 12
        pixels = np.frombuffer(data, np.uint8, height * stride, start).reshape(height, stride // 4, 4)
        return pixels[:, :width, 2::-1].copy()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.folder, ignore_errors=True)
