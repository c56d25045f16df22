"""The app as a user starts it, on a real X server: the window maps and X shows the hung study.

Offscreen tests render widgets for themselves; here `python -m app demo` runs as its own process on
Xvfb with Qt's X11 plugin, and the test reads the pixels from the X server's frame buffer.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DRAW_TIMEOUT_S = 120.0


def _window(screen: np.ndarray) -> tuple[slice, slice] | None:
    """The box of rows and columns that are mostly not black (the root window of Xvfb is black)."""
    lit = screen.max(2) > 0
    rows, cols = np.flatnonzero(lit.mean(1) > 0.5), np.flatnonzero(lit.mean(0) > 0.5)
    if not len(rows) or not len(cols):
        return None
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _viewports(win: np.ndarray) -> list[tuple[slice, slice]]:
    """The four largest black areas (the viewports' backgrounds) in reading order, as boxes."""
    count, _, stats, _ = cv2.connectedComponentsWithStats((win.max(2) < 8).astype(np.uint8), connectivity=4)
    largest = sorted(range(1, count), key=lambda label: -stats[label, cv2.CC_STAT_AREA])[:4]
    boxes = [stats[label] for label in largest if stats[label, cv2.CC_STAT_AREA] > win.shape[0] * win.shape[1] / 50]
    boxes.sort(key=lambda box: (box[cv2.CC_STAT_TOP] > win.shape[0] / 2, box[cv2.CC_STAT_LEFT]))
    return [(slice(top, top + height), slice(left, left + width)) for left, top, width, height, _ in boxes]


def hung_mammogram(screen: np.ndarray) -> str | None:
    """None when the screen shows the window with four breasts whose chest walls meet in the middle, else what not."""
    window = _window(screen)
    if window is None:
        return "no window on the screen"
    win = screen[window]
    if win.shape[0] < 900 or win.shape[1] < 1500:
        return f"the window is {win.shape[1]} x {win.shape[0]}, not 1600 x 1000"
    views = _viewports(win)
    if len(views) != 4:
        return f"{len(views)} viewports in the window, not 4"
    for name, view, chest_wall_right in zip(("R CC", "L CC", "R MLO", "L MLO"), views, (True, False, True, False)):
        cell = win[view].astype(int)
        tissue = (np.ptp(cell, axis=2) < 12) & (cell.mean(2) > 40) & (cell.mean(2) < 235)
        if tissue.mean() < 0.15:
            return f"{name}: only {tissue.mean():.0%} of the view shows tissue"
        centre = np.flatnonzero(tissue.any(0)).mean() / tissue.shape[1]
        if (centre > 0.5) != chest_wall_right:
            return f"{name}: the breast leans {'right' if centre > 0.5 else 'left'}; its chest wall is not in the middle"
    return None


def test_demo_opens_on_a_real_x_server(x_server, tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "QT_QPA_PLATFORM"}
    env.update(DISPLAY=x_server.display, XDG_CONFIG_HOME=str(tmp_path / "config"), RADLENS_LOG_DIR=str(tmp_path / "log"))
    app = subprocess.Popen([sys.executable, "-m", "app", "demo", "--size", "1600x1000"], cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, problem = time.monotonic() + DRAW_TIMEOUT_S, "not started"
        while time.monotonic() < deadline and app.poll() is None:
            problem = hung_mammogram(x_server.screen())
            if problem is None:
                break
            time.sleep(0.5)
        assert app.poll() is None, f"the app ended ({app.returncode}): {app.communicate()[0][-2000:]}"
        assert problem is None, problem
    finally:
        app.terminate()
        output = app.communicate(timeout=30)[0]
    assert "Traceback" not in output, output
    log = (tmp_path / "log" / "radlens.log").read_text()
    assert " ERROR " not in log and "CRITICAL" not in log, log


def test_the_check_sees_a_blank_screen_and_a_mirrored_hanging():
    blank = np.zeros((1080, 1920, 3), np.uint8)
    assert hung_mammogram(blank) == "no window on the screen"
    window = blank.copy()
    window[:1000, :1600] = 230  # the window's grey, four black viewports with tissue at their chest-wall side
    for top in (40, 520):
        for left, wall_right in ((260, True), (710, False)):
            window[top:top + 476, left:left + 446] = 0
            cols = slice(left + 225, left + 446) if wall_right else slice(left, left + 221)
            window[top + 60:top + 420, cols] = 128
    assert hung_mammogram(window) is None
    mirrored = window.copy()  # every view flipped within its own viewport: chest walls at the outer edges
    for top in (40, 520):
        for left in (260, 710):
            mirrored[top:top + 476, left:left + 446] = window[top:top + 476, left:left + 446][:, ::-1]
    assert hung_mammogram(mirrored) == "R CC: the breast leans left; its chest wall is not in the middle"


def test_without_a_display_the_app_says_so_and_ends(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    env["RADLENS_LOG_DIR"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-m", "app", "demo"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert "no display found (DISPLAY is not set)" in done.stderr and "--screenshot" in done.stderr


def test_missing_x11_libraries_are_named_with_the_command_that_installs_them(monkeypatch):
    import ctypes.util

    from app.ui.application import display_problem

    real = ctypes.util.find_library
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None if name == "xcb-icccm" else real(name))
    monkeypatch.setenv("DISPLAY", ":99")
    for platform in (None, "xcb"):  # chosen by Qt, or asked for by name
        if platform:
            monkeypatch.setenv("QT_QPA_PLATFORM", platform)
        else:
            monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
        assert display_problem(False).endswith("sudo apt-get install libxcb-icccm4")
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert display_problem(False) is None
