"""Uncaught errors: written to the rotating log file, shown once in a dialog naming the log, the app goes on."""

from __future__ import annotations

import sys
import threading

import pytest
from PySide6 import QtWidgets

from app import crash_log
from app.ui import crash_dialog


@pytest.fixture
def log_file(tmp_path, monkeypatch):
    monkeypatch.setenv(crash_log.LOG_DIR_VARIABLE, str(tmp_path / "logs"))
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    crash_log.stop_logging()
    path = crash_log.start_logging()
    yield path
    crash_log.stop_logging()


@pytest.fixture
def shown_dialogs(monkeypatch):
    """Dialogs the reporter opens, recorded instead of shown."""
    shown = []

    class RecordedDialog:
        def __init__(self, summary, log_file):
            self.summary, self.log_file = summary, log_file

        def open(self):
            shown.append(self)

        def isVisible(self):
            return False

    monkeypatch.setattr(crash_dialog, "error_dialog",
                        lambda parent, summary, text, log_file: RecordedDialog(summary, log_file))
    return shown


def test_log_file_is_in_the_chosen_folder_and_rotates(log_file, tmp_path):
    assert log_file == tmp_path / "logs" / crash_log.LOG_FILE_NAME
    assert crash_log.start_logging() == log_file  # idempotent
    assert crash_log.log_path() == log_file
    handler = crash_log._handler
    assert handler.maxBytes == crash_log.MAX_LOG_BYTES and handler.backupCount == crash_log.LOG_BACKUPS


@pytest.mark.qt_no_exception_capture
def test_error_in_a_slot_is_logged_and_shown_and_the_app_keeps_running(qtbot, log_file, shown_dialogs):
    button = QtWidgets.QPushButton("boom")
    qtbot.addWidget(button)
    clicks = []

    def fail():
        clicks.append(1)
        raise ZeroDivisionError("the slot failed")

    button.clicked.connect(fail)
    crash_dialog.UncaughtErrorReporter(button, log_file, show_dialogs=True).install()
    button.click()
    qtbot.waitUntil(lambda: len(shown_dialogs) == 1)
    button.click()  # still alive: the slot runs again
    qtbot.waitUntil(lambda: len(shown_dialogs) == 2)
    assert clicks == [1, 1]
    assert shown_dialogs[0].log_file == log_file
    assert "ZeroDivisionError: the slot failed" in shown_dialogs[0].summary
    text = log_file.read_text()
    assert text.count("ZeroDivisionError: the slot failed") == 2 and "Traceback" in text


def test_error_in_a_worker_thread_reaches_the_dialog_on_the_ui_thread(qtbot, log_file, shown_dialogs):
    widget = QtWidgets.QWidget()
    qtbot.addWidget(widget)
    crash_dialog.UncaughtErrorReporter(widget, log_file, show_dialogs=True).install()
    worker = threading.Thread(target=lambda: 1 / 0, name="decoder")
    worker.start()
    worker.join()
    qtbot.waitUntil(lambda: len(shown_dialogs) == 1)
    assert "in decoder" in log_file.read_text()


def test_offscreen_runs_only_log(qtbot, log_file, shown_dialogs):
    assert not crash_dialog.dialogs_possible(screenshot=False)  # the tests run offscreen
    reporter = crash_dialog.UncaughtErrorReporter(None, log_file, show_dialogs=False)
    try:
        raise RuntimeError("nobody to answer")
    except RuntimeError:
        reporter.report(*sys.exc_info())
    qtbot.wait(20)
    assert shown_dialogs == [] and "nobody to answer" in log_file.read_text()


def test_qt_warnings_go_to_the_log_file(qtbot, log_file):
    from PySide6 import QtCore

    from app.ui.application import create_application

    create_application()
    QtCore.qWarning("radlens test: a Qt warning")
    assert "WARNING radlens.qt" in log_file.read_text() and "a Qt warning" in log_file.read_text()
