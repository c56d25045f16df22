"""Starting the Qt application: the window, the study to open, and the screenshot-and-exit mode."""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path

from PySide6 import QtCore, QtWidgets

SCREENSHOT_TIMEOUT_MS = 300_000
DEFAULT_SCREENSHOT_SIZE = (1600, 1000)
log = logging.getLogger("radlens")


def create_application() -> QtWidgets.QApplication:
    import pyqtgraph as pg

    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("RadLens")
    app.setOrganizationName("RadLens")
    from PySide6 import QtGui

    from app.paths import resource_path

    app.setWindowIcon(QtGui.QIcon(str(resource_path("radlens.svg"))))
    return app


def run_viewer(paths: list[Path], demo: bool = False, screenshot: Path | None = None,
               size: tuple[int, int] | None = None) -> int:
    app = create_application()
    from app.ui.main_window import MainWindow

    window = MainWindow()
    if size or screenshot:
        window.resize(*(size or DEFAULT_SCREENSHOT_SIZE))
    sys.excepthook = lambda kind, error, tb: _show_uncaught(window, kind, error, tb)
    window.show()
    if demo:
        window.open_demo()
    elif paths:
        window.open_paths(paths)
    if screenshot is None:
        return app.exec()
    return ScreenshotWhenDrawn(window, screenshot).run(app)


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
        window = self.window
        if not window.scan_done or window.loader.busy:
            return False
        return window.current_study is None or window.study_view.is_fully_painted or not window.study_view._expected

    def _check(self) -> None:
        if not (self.is_drawn() or self._deadline.hasExpired()):
            return
        self._timer.stop()
        QtWidgets.QApplication.processEvents()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        saved = self.window.grab().save(str(self.out))
        timed_out = not self.is_drawn()
        nothing_opened = self.window.current_study is None
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


def _show_uncaught(window, kind, error, tb) -> None:
    """An unexpected error is logged and shown; the window stays open."""
    text = "".join(traceback.format_exception(kind, error, tb))
    log.error("Unexpected error\n%s", text)
    print(text, file=sys.stderr)
    box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Critical, "RadLens: unexpected error",
                                f"{kind.__name__}: {error}", parent=window)
    box.setDetailedText(text)
    box.exec() if not QtWidgets.QApplication.platformName() == "offscreen" else None
