"""The study list panel of the main window: the studies and problems of what was opened, and what selecting them shows."""

from __future__ import annotations

import logging

from PySide6 import QtCore, QtWidgets

from app.core.study import can_read_side_by_side, side_by_side
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

    def _on_scan_finished(self, result: ScanResult) -> None:
        self.scan_done = True
        self.progress.setVisible(False)
        self.studies = list(result.studies)
        self._add_problems(result.problems)
        for study in self.studies:
            count = len(study.images)
            item = QtWidgets.QListWidgetItem(f"{study.title}\n{count} image{'s' if count != 1 else ''}")
            item.setToolTip(printable(str(study.images[0].path.parent)))
            self.study_list.addItem(item)
        if self.studies:
            self.settings.add_recent(self._pending_recent)
            self.study_list.setCurrentRow(0)
            if can_read_side_by_side(self.studies):  # loose single images: read them together
                self.study_list.selectAll()
        else:
            self.study_view.show_message("No images could be opened.\nThe Problems list says why for each file.")
            self.statusBar().showMessage("Nothing to show", 8000)

    def _on_selection_changed(self) -> None:
        """One selected study shows with its hanging; several (no mammogram among them) side by side."""
        rows = sorted(self.study_list.row(item) for item in self.study_list.selectedItems())
        chosen = [self.studies[row] for row in rows if 0 <= row < len(self.studies)]
        if not chosen:
            return
        if len(chosen) > 1 and not any(study.is_mammography for study in chosen):
            study = side_by_side(chosen)
        else:
            row = self.study_list.currentRow()
            current = self.studies[row] if 0 <= row < len(self.studies) else None
            study = current if current in chosen else chosen[0]
        if self.current_study is None or study.key != self.current_study.key:
            self.show_study(study)

    def _step_study(self, step: int) -> None:
        if self.studies:
            self.study_list.setCurrentRow((self.study_list.currentRow() + step) % len(self.studies))

    def _add_problems(self, problems: list[LoadProblem]) -> None:
        known = {(p.path, p.reason) for p in self.problems}
        for problem in problems:
            if (problem.path, problem.reason) in known:
                continue
            self.problems.append(problem)
            log.warning("Not opened: %s: %s", printable(str(problem.path)), problem.reason)
            item = QtWidgets.QListWidgetItem(f"{printable(problem.path.name or str(problem.path))}: {problem.reason}")
            item.setToolTip(printable(str(problem.path)))
            self.problem_list.addItem(item)
        self._set_problems_visible(bool(self.problems))
        self.problem_label.setText(f"Problems ({len(self.problems)} file{'s' if len(self.problems) != 1 else ''} "
                                   "not opened)")

    def _set_problems_visible(self, visible: bool) -> None:
        self.problem_label.setVisible(visible)
        self.problem_list.setVisible(visible)
