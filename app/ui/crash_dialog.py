"""Uncaught exceptions in the viewer: logged with their traceback, shown in a dialog that says where the log is.

Covers the main thread (`sys.excepthook`, which PySide calls for an exception escaping a slot)
and worker threads (`threading.excepthook`). The window keeps running. Where nobody could answer
a dialog (offscreen, screenshot mode, tests) the error is only logged.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from pathlib import Path

from PySide6 import QtCore, QtWidgets

log = logging.getLogger("radlens")


class UncaughtErrorReporter(QtCore.QObject):
    """Installs itself as the excepthook; one dialog at a time, later errors only logged while it is open."""

    error_caught = QtCore.Signal(str, str)  # summary, traceback text; delivered on the UI thread

    def __init__(self, parent: QtWidgets.QWidget | None, log_file: Path, show_dialogs: bool = True) -> None:
        super().__init__(parent)
        self.parent_widget, self.log_file, self.show_dialogs = parent, Path(log_file), show_dialogs
        self.dialog: QtWidgets.QMessageBox | None = None
        self.error_caught.connect(self._show, QtCore.Qt.ConnectionType.QueuedConnection)

    def install(self) -> UncaughtErrorReporter:
        sys.excepthook = self.report
        threading.excepthook = lambda args: self.report(args.exc_type, args.exc_value, args.exc_traceback,
                                                         args.thread.name if args.thread else "a thread")
        return self

    def report(self, kind, error, tb, where: str = "") -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, error, tb)
            return
        text = "".join(traceback.format_exception(kind, error, tb))
        log.error("Unexpected error%s\n%s", f" in {where}" if where else "", text.rstrip())
        if sys.stderr is not None:
            print(text, file=sys.stderr)
        if self.show_dialogs:
            self.error_caught.emit(f"{kind.__name__}: {error}", text)

    def _show(self, summary: str, text: str) -> None:
        if self.dialog is not None and self.dialog.isVisible():
            return
        self.dialog = error_dialog(self.parent_widget, summary, text, self.log_file)
        self.dialog.open()  # not exec(): the window stays usable behind it


def error_dialog(parent, summary: str, text: str, log_file: Path) -> QtWidgets.QMessageBox:
    box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Critical, "RadLens: unexpected error",
                                f"{summary}\n\nRadLens goes on running. The details are in the log:\n{log_file}",
                                parent=parent)
    box.setDetailedText(text)
    box.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
    return box


def dialogs_possible(screenshot: bool) -> bool:
    """False where no one could close a dialog: offscreen rendering or screenshot-and-exit runs."""
    return not screenshot and QtWidgets.QApplication.platformName() not in ("offscreen", "minimal")
