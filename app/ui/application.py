"""Starting the Qt application: the window, the study to open, and the screenshot-and-exit mode."""

from __future__ import annotations

import contextlib
import ctypes.util
import importlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from PySide6 import QtCore, QtWidgets

SCREENSHOT_TIMEOUT_MS = 300_000
DEFAULT_SCREENSHOT_SIZE = (1600, 1000)


# Qt messages that say nothing a user or developer can act on (the offscreen plugin's size hints).
IGNORED_QT_MESSAGES = ("This plugin does not support propagateSizeHints",)


def _route_qt_message(mode: QtCore.QtMsgType, _context, message: str) -> None:
    if message.startswith(IGNORED_QT_MESSAGES):
        return
    level = {QtCore.QtMsgType.QtDebugMsg: logging.DEBUG, QtCore.QtMsgType.QtInfoMsg: logging.INFO,
             QtCore.QtMsgType.QtWarningMsg: logging.WARNING}.get(mode, logging.ERROR)
    logging.getLogger("radlens.qt").log(level, message)


def create_application() -> QtWidgets.QApplication:
    import pyqtgraph as pg

    QtCore.qInstallMessageHandler(_route_qt_message)

    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("RadLens")
    app.setOrganizationName("RadLens")
    from PySide6 import QtGui

    from app.paths import resource_path

    app.setWindowIcon(QtGui.QIcon(str(resource_path("radlens.svg"))))
    return app


# Libraries Qt's X11 plugin loads on Linux and that minimal systems lack (Debian/Ubuntu names).
XCB_LIBRARIES = {"xcb-cursor": "libxcb-cursor0", "xcb-icccm": "libxcb-icccm4", "xcb-keysyms": "libxcb-keysyms1",
                 "xkbcommon-x11": "libxkbcommon-x11-0", "xcb-image": "libxcb-image0",
                 "xcb-render-util": "libxcb-render-util0", "EGL": "libegl1"}


def display_problem(screenshot: bool) -> str | None:
    """Why no window can open here, in words a user can act on; None when it can.

    A screenshot needs no screen: with none, it renders offscreen.
    """
    platform = os.environ.get("QT_QPA_PLATFORM")
    if (platform and platform != "xcb") or sys.platform != "linux":  # xcb asked for by name is checked too
        return None
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        if screenshot:
            os.environ["QT_QPA_PLATFORM"] = "offscreen"
            return None
        return ("no display found (DISPLAY is not set). Run RadLens on a desktop, or add "
                "--screenshot OUT.png to render a study without a screen.")
    if os.environ.get("WAYLAND_DISPLAY") and not os.environ.get("DISPLAY") and not platform:
        return None
    missing = [pkg for lib, pkg in XCB_LIBRARIES.items() if ctypes.util.find_library(lib) is None]
    if missing:
        return ("Qt needs system libraries that are missing: install them with\n"
                f"  sudo apt-get install {' '.join(missing)}")
    return None


def run_viewer(paths: list[Path], demo: bool = False, screenshot: Path | None = None,
               size: tuple[int, int] | None = None, run_ai: bool = False) -> int:
    problem = display_problem(screenshot is not None)
    if problem:
        print(f"radlens: {problem}", file=sys.stderr)
        return 2
    from app.crash_log import start_logging

    log_file = start_logging()
    app = create_application()
    from app.ui.crash_dialog import UncaughtErrorReporter, dialogs_possible
    from app.ui.main_window import MainWindow

    window = MainWindow()
    if size or screenshot:
        window.resize(*(size or DEFAULT_SCREENSHOT_SIZE))
    UncaughtErrorReporter(window, log_file, show_dialogs=dialogs_possible(screenshot is not None)).install()
    window.show()
    with inference_loading_in_background():
        window.ai.run_when_decoded = run_ai
        if demo:
            window.open_demo()
        elif paths:
            window.open_paths(paths)
        if screenshot is None:
            return app.exec()
        return ScreenshotWhenDrawn(window, screenshot).run(app)


@contextlib.contextmanager
def inference_loading_in_background() -> Iterator[None]:
    """Import torch and the inference engine (seconds) while the window draws, not before it opens.

    A run started before this finishes waits for it on Python's import lock; nothing is loaded twice.
    Leaving waits for the import to end: a window closed (or a screenshot saved) sooner would otherwise
    exit with torch half-imported, and its finalizers print tracebacks while the interpreter tears down.
    """
    loader = threading.Thread(target=importlib.import_module, args=("app.inference.runner",), name="load-torch",
                              daemon=True)
    loader.start()
    try:
        yield
    finally:
        loader.join()


class ScreenshotWhenDrawn(QtCore.QObject):
    """Waits until the study is read, decoded and painted, saves the whole window, then quits."""

    def __init__(self, window, out: Path) -> None:
        super().__init__(window)
        self.window, self.out, self.code = window, Path(out), 1
        self._timer = QtCore.QTimer(self, interval=50)
        self._timer.timeout.connect(self._check)
        self._deadline = QtCore.QDeadlineTimer(SCREENSHOT_TIMEOUT_MS)

    def run(self, app: QtWidgets.QApplication) -> int:
        self._timer.start()
        app.exec()
        return self.code

    def is_drawn(self) -> bool:
        return self.window.session.is_drawn

    def _check(self) -> None:
        if not (self.is_drawn() or self._deadline.hasExpired()):
            return
        self._timer.stop()
        QtWidgets.QApplication.processEvents()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        saved = self.window.grab().save(str(self.out))
        timed_out = not self.is_drawn()
        nothing_opened = self.window.session.shown is None
        if not saved:
            print(f"radlens: could not write {self.out}", file=sys.stderr)
        if timed_out:
            print("radlens: timed out waiting for the study to be drawn; saved what was shown", file=sys.stderr)
        if nothing_opened:
            print("radlens: nothing could be opened; the Problems list in the screenshot says why", file=sys.stderr)
        self.code = 0 if saved and not timed_out and not nothing_opened else 1
        if saved:
            print(f"Saved {self.out}")
        self.window.close()
        QtWidgets.QApplication.quit()

