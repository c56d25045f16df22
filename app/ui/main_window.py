"""The main window: a reading session, the widgets built on it, and the loaders that fill it."""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from app.core.study import Study
from app.session import ReadingSession
from app.ui.ai_dock import AiDock
from app.ui.file_commands import WELCOME, FileCommands
from app.ui.send_results import ResultsSender
from app.ui.settings import AppSettings
from app.ui.study_list_panel import StudyListPanel
from app.ui.study_loading import StudyLoadController
from app.ui.study_view import StudyView
from app.ui.window_actions import WindowActions


WORKER_THREADS = 8


class MainWindow(FileCommands, StudyListPanel, WindowActions, QtWidgets.QMainWindow):
    """Built from a `ReadingSession`, the reading area and the AI dock built on it, and the three parts mixed
    in: file commands, the study list panel, and actions with menus. This file ties the loaders to the session
    and the session to the window's title, status bar and decoding."""

    def __init__(self, settings: AppSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or AppSettings()
        self.setWindowTitle("RadLens")
        self.setAcceptDrops(True)
        self.session = ReadingSession()
        # The workers (scan, decode, inference, PACS retrieve and send, prior lookup) share Qt's global pool,
        # which holds one thread per core: on two cores a long AI run and a decode left a send waiting forever.
        # They wait on disk, network or torch (which releases the GIL), so a few more threads than cores is right.
        pool = QtCore.QThreadPool.globalInstance()
        pool.setMaxThreadCount(max(pool.maxThreadCount(), WORKER_THREADS))
        self._pending_recent: list[Path] = []
        self.loader = StudyLoadController(self)
        self.session.shown_changed.connect(self._on_shown)  # first: decoding overlaps building the viewports
        self.study_view = StudyView(self.session, self)
        self.study_view.set_show_patient_name(self.settings.show_patient_name())
        self.study_view.show_message(WELCOME)
        self.setCentralWidget(self.study_view)
        self._build_side_panel()
        self.ai = AiDock(self.session, self.settings, parent=self)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, self.ai)
        self.resizeDocks([self.ai], [340], QtCore.Qt.Orientation.Horizontal)
        self.pacs_panel = None  # made by show_pacs
        self.results_sender = ResultsSender(self.session, self.study_view, self)
        self.results_sender.finished.connect(self._on_results_sent)
        self._build_actions()
        self.ai.send_button.clicked.connect(self.actions["send_results"].trigger)
        self._build_status_bar()
        self._connect_loader()
        self.session.active_changed.connect(self._on_active)
        self.session.image_added.connect(lambda series, _state: series == self.session.active and self._on_active())
        self.session.link_changed.connect(self._show_link)
        self._restore_window()

    def _build_status_bar(self) -> None:
        self.progress = QtWidgets.QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setVisible(False)
        self.statusBar().addPermanentWidget(self.progress)

    def _connect_loader(self) -> None:
        loader, session = self.loader, self.session
        loader.scan_progress.connect(self._on_scan_progress)
        loader.scan_finished.connect(self._on_scan_finished)
        loader.decode_progress.connect(self._on_decode_progress)
        loader.image_ready.connect(session.add_image)
        loader.series_failed.connect(
            lambda key, series, problems: session.fail_series(key, series, problems[0].reason if problems
                                                              else "unknown error"))
        loader.problems_found.connect(session.add_problems)
        loader.study_decoded.connect(self._on_study_decoded)

    def _on_scan_progress(self, done: int, total: int, name: str) -> None:
        self.progress.setVisible(True)
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.setFormat("Reading headers %v/%m")

    def _on_shown(self, study: Study | None) -> None:
        if study is None:
            return
        self.loader.decode(study)  # images arrive queued, after the viewports are built
        self._show_link(self.session.link.enabled)
        self.setWindowTitle(f"RadLens — {study.title}")
        self.statusBar().showMessage(f"Decoding {len(study.series)} image(s)…")

    def _show_link(self, enabled: bool) -> None:
        if hasattr(self, "actions"):
            with QtCore.QSignalBlocker(self.actions["link"]):
                self.actions["link"].setChecked(enabled)

    def _on_decode_progress(self, done: int, total: int) -> None:
        self.progress.setVisible(done < total)
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.setFormat("Decoding %v/%m")

    def _on_study_decoded(self, study_key: str) -> None:
        self.progress.setVisible(False)
        shown = self.session.shown
        self.session.finish_decoding(study_key)
        if shown is not None and study_key == shown.key:
            self.statusBar().showMessage(shown.title, 5000)
            self.ai.study_decoded()

    def _on_results_sent(self, summary: str, ok: bool) -> None:
        self.ai.show_send_status(summary, ok)
        self.statusBar().showMessage(summary.splitlines()[0], 10000)

    def _restore_window(self) -> None:
        geometry, state = self.settings.geometry(), self.settings.window_state()
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1600, 1000)
        if state is not None:
            self.restoreState(state)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.loader.cancel()
        self.ai.controller.cancel()
        if self.pacs_panel is not None:
            self.pacs_panel.shut_down()
        self.settings.save_window(self.saveGeometry(), self.saveState())
        super().closeEvent(event)
