"""The study list panel of the main window: the session's studies and problems; selecting studies shows them."""

from __future__ import annotations

import logging

from PySide6 import QtCore, QtWidgets

from app.core.text import printable
from app.io.errors import LoadProblem
from app.io.study_loader import ScanResult

log = logging.getLogger("radlens.ui")


class StudyListPanel:
    """Mixed into MainWindow (app/ui/main_window.py), whose widgets and loader it uses."""

    def _build_side_panel(self) -> None:
        self.study_list = QtWidgets.QListWidget()
        self.study_list.setObjectName("studyList")
        self.study_list.setWordWrap(True)
        self.study_list.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.study_list.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.ExtendedSelection)
        self.study_list.setToolTip("Select several studies (Ctrl or Shift + click) to read them side by side")
        self.study_list.itemSelectionChanged.connect(self._on_selection_changed)
        self.problem_list = QtWidgets.QListWidget()
        self.problem_list.setObjectName("problemList")
        self.problem_list.setWordWrap(True)
        self.problem_list.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.problem_label = QtWidgets.QLabel("Problems")
        panel = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(panel)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.study_list, 3)
        layout.addWidget(self.problem_label)
        layout.addWidget(self.problem_list, 1)
        self._set_problems_visible(False)
        dock = QtWidgets.QDockWidget("Studies", self)
        dock.setObjectName("studiesDock")
        dock.setWidget(panel)
        dock.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        self.resizeDocks([dock], [260], QtCore.Qt.Orientation.Horizontal)
        self.side_dock = dock
        self._connect_session_to_lists()

    def _connect_session_to_lists(self) -> None:
        session = self.session
        session.reading_started.connect(self._on_reading_started)
        session.studies_changed.connect(self._fill_study_list)
        session.problems_added.connect(self._show_problems)
        session.shown_changed.connect(self._select_shown)

    def _on_scan_finished(self, result: ScanResult) -> None:
        self.progress.setVisible(False)
        if result.studies:
            self.settings.add_recent(self._pending_recent)
        self.session.finish_reading(result.studies, result.problems)

    def _on_reading_started(self) -> None:
        self.study_list.clear()
        self.problem_list.clear()
        self._set_problems_visible(False)

    def _fill_study_list(self) -> None:
        with QtCore.QSignalBlocker(self.study_list):
            self.study_list.clear()
            for study in self.session.studies:
                count = len(study.images)
                item = QtWidgets.QListWidgetItem(f"{study.title}\n{count} image{'s' if count != 1 else ''}")
                item.setToolTip(printable(str(study.images[0].path.parent)))
                self.study_list.addItem(item)
        if not self.session.studies and not self.session.reading:
            self.study_view.show_message("No images could be opened.\nThe Problems list says why for each file.")
            self.statusBar().showMessage("Nothing to show", 8000)

    def _select_shown(self, _study) -> None:
        """The list selects what the session shows (the reader's selection, or the session's first choice)."""
        rows = [self.session.studies.index(s) for s in self.session.on_screen if s in self.session.studies]
        model, flags = self.study_list.model(), QtCore.QItemSelectionModel.SelectionFlag
        selection = QtCore.QItemSelection()
        for row in rows:
            selection.select(model.index(row, 0), model.index(row, 0))
        with QtCore.QSignalBlocker(self.study_list):  # (item.setSelected would leave Qt's selection anchor behind)
            if rows:
                self.study_list.selectionModel().setCurrentIndex(model.index(rows[0], 0), flags.NoUpdate)
            self.study_list.selectionModel().select(selection, flags.ClearAndSelect)

    def _on_selection_changed(self) -> None:
        """The reader chose studies: one shows with its hanging, several (no mammogram) side by side."""
        rows = sorted(self.study_list.row(item) for item in self.study_list.selectedItems())
        studies = self.session.studies
        chosen = [studies[row] for row in rows if 0 <= row < len(studies)]
        row = self.study_list.currentRow()
        self.session.show(chosen, current=studies[row] if 0 <= row < len(studies) else None)

    def _show_problems(self, problems: list[LoadProblem]) -> None:
        for problem in problems:
            log.warning("Not opened: %s: %s", printable(str(problem.path)), problem.reason)
            item = QtWidgets.QListWidgetItem(f"{printable(problem.path.name or str(problem.path))}: {problem.reason}")
            item.setToolTip(printable(str(problem.path)))
            self.problem_list.addItem(item)
        count = len(self.session.problems)
        self._set_problems_visible(bool(count))
        self.problem_label.setText(f"Problems ({count} file{'s' if count != 1 else ''} not opened)")

    def _set_problems_visible(self, visible: bool) -> None:
        self.problem_label.setVisible(visible)
        self.problem_list.setVisible(visible)
