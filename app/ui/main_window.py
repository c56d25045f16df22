"""The main window: builds itself from its parts and shows the studies the loader reads."""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from app.core.hanging import GRIDS, hang
from app.core.study import Study
from app.io.errors import LoadProblem
from app.ui.ai_dock import AiDock
from app.ui.file_commands import WELCOME, FileCommands
from app.ui.settings import AppSettings
from app.ui.study_list_panel import StudyListPanel
from app.ui.study_loading import StudyLoadController
from app.ui.study_view import StudyView
from app.ui.window_actions import WindowActions


class MainWindow(FileCommands, StudyListPanel, WindowActions, QtWidgets.QMainWindow):
    """Built from the reading area, the AI dock and the three parts mixed in: file commands, the study
    list panel, and actions with menus. This file holds what ties them: loading and showing a study."""

    def __init__(self, settings: AppSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or AppSettings()
        self.setWindowTitle("RadLens")
        self.setAcceptDrops(True)
        self.studies: list[Study] = []
        self.problems: list[LoadProblem] = []
        self.current_study: Study | None = None
        self.grid = GRIDS[0]  # how several studies read side by side are arranged (G cycles)
        self.scan_done = True
        self._pending_recent: list[Path] = []

        self.loader = StudyLoadController(self)
        self.study_view = StudyView(self)
        self.study_view.set_show_patient_name(self.settings.show_patient_name())
        self.study_view.show_message(WELCOME)
        self.setCentralWidget(self.study_view)
        self._build_side_panel()
        self.ai = AiDock(self.study_view, self.settings, parent=self)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, self.ai)
        self.resizeDocks([self.ai], [340], QtCore.Qt.Orientation.Horizontal)
        self._build_actions()
        self._build_status_bar()
        self._connect_loader()
        self.study_view.active_changed.connect(self._on_active_viewport)
        self._restore_window()

    def _build_status_bar(self) -> None:
        self.progress = QtWidgets.QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setVisible(False)
        self.statusBar().addPermanentWidget(self.progress)

    def _connect_loader(self) -> None:
        loader = self.loader
        loader.scan_progress.connect(self._on_scan_progress)
        loader.scan_finished.connect(self._on_scan_finished)
        loader.decode_progress.connect(self._on_decode_progress)
        loader.image_ready.connect(self._on_image_ready)
        loader.series_failed.connect(self._on_series_failed)
        loader.problems_found.connect(self._add_problems)
        loader.study_decoded.connect(self._on_study_decoded)

    def _on_scan_progress(self, done: int, total: int, name: str) -> None:
        self.progress.setVisible(True)
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.setFormat(f"Reading headers %v/%m")

    def show_study(self, study: Study) -> None:
        self.current_study = study
        self.ai.set_study(study)
        self.loader.decode(study)  # first, so decoding overlaps building the viewports; images arrive queued
        hanging = hang(study, self.grid if study.is_side_by_side else "")
        self.study_view.set_hanging(hanging, link=hanging.is_four_view)
        with QtCore.QSignalBlocker(self.actions["link"]):
            self.actions["link"].setChecked(hanging.is_four_view)
        self.setWindowTitle(f"RadLens — {study.title}")
        self.statusBar().showMessage(f"Decoding {len(study.series)} image(s)…")

    def _on_decode_progress(self, done: int, total: int) -> None:
        self.progress.setVisible(done < total)
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.setFormat("Decoding %v/%m")

    def _on_image_ready(self, study_key: str, series, image) -> None:
        if self.current_study is not None and study_key == self.current_study.key:
            self.study_view.show_image(series, image)
            self._on_active_viewport(self.study_view.active)

    def _on_series_failed(self, study_key: str, series, problems) -> None:
        if self.current_study is not None and study_key == self.current_study.key:
            reason = problems[0].reason if problems else "unknown error"
            self.study_view.mark_failed(series, reason)

    def _on_study_decoded(self, study_key: str) -> None:
        self.progress.setVisible(False)
        if self.current_study is not None and study_key == self.current_study.key:
            self.statusBar().showMessage(self.current_study.title, 5000)
            self.ai.study_decoded()

    def _restore_window(self) -> None:
        geometry, state = self.settings.geometry(), self.settings.window_state()
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1600, 1000)
        if state is not None:
            self.restoreState(state)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.loader.cancel()
        self.ai.controller.cancel()
        self.settings.save_window(self.saveGeometry(), self.saveState())
        super().closeEvent(event)
