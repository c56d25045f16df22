"""The main window: study list, problems list, the reading area, menus, toolbar, drag and drop."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from app.core.hanging import GRIDS, hang
from app.core.study import Study, can_read_side_by_side, side_by_side
from app.core.text import printable
from app.io.errors import LoadProblem
from app.io.study_loader import ScanResult
from app.ui.ai_dock import AiDock
from app.ui.settings import AppSettings
from app.ui.shortcuts import MOUSE_HELP, SHORTCUTS, keys_for
from app.ui.study_loading import StudyLoadController
from app.ui.study_view import StudyView

log = logging.getLogger("radlens.ui")
WELCOME = "Drop DICOM, PNG or JPEG files or folders here\nor use File > Open (Ctrl+O)"


class MainWindow(QtWidgets.QMainWindow):
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

    # ---- building ---------------------------------------------------------------------------
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

    def _build_actions(self) -> None:
        handlers = {
            "open_files": self.choose_files, "open_folder": self.choose_folder,
            "fit": lambda: self._each(lambda s: s.fit()),
            "one_to_one": lambda: self._each(lambda s: s.one_to_one()),
            "invert": lambda: self._each(lambda s: s.set_invert(not s.invert)),
            "flip_horizontal": lambda: self._each(lambda s: s.flip(horizontal=True)),
            "flip_vertical": lambda: self._each(lambda s: s.flip(horizontal=False)),
            "link": None, "reset": self.reset_view, "next_preset": self.next_preset,
            "next_frame": lambda: self._each(lambda s: s.set_frame(s.frame + 1)),
            "previous_frame": lambda: self._each(lambda s: s.set_frame(s.frame - 1)),
            "next_study": lambda: self._step_study(1), "previous_study": lambda: self._step_study(-1),
            "patient_name": None, "cancel": self.cancel_loading, "help": self.show_help, "quit": self.close,
            "grid": self.next_grid, "run_ai": self.ai.run, "hide_overlays": None, "export_view": self.export_view,
            "export_seg": self.export_segmentation,
        }
        self.actions: dict[str, QtGui.QAction] = {}
        for shortcut in SHORTCUTS:
            action = QtGui.QAction(shortcut.text, self)
            action.setShortcut(QtGui.QKeySequence(shortcut.keys))
            action.setShortcutContext(QtCore.Qt.ShortcutContext.WindowShortcut)
            if handlers[shortcut.action] is not None:
                action.triggered.connect(handlers[shortcut.action])
            self.addAction(action)
            self.actions[shortcut.action] = action
        link = self.actions["link"]
        link.setCheckable(True)
        link.toggled.connect(self.study_view.set_link_enabled)
        names = self.actions["patient_name"]
        names.setCheckable(True)
        names.setChecked(self.settings.show_patient_name())
        names.toggled.connect(self._set_show_patient_name)
        hide = self.actions["hide_overlays"]
        hide.setCheckable(True)
        hide.toggled.connect(self.ai.stack.set_all_hidden)
        self.actions["fit"].setIconText("Fit")
        self.actions["one_to_one"].setIconText("1:1")
        self.actions["invert"].setIconText("Invert")
        self.actions["link"].setIconText("Link")
        self.actions["reset"].setIconText("Reset")
        self.actions["open_files"].setIconText("Open")

        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        file_menu.addAction(self.actions["open_files"])
        file_menu.addAction(self.actions["open_folder"])
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addAction("Open &Demo Study", self.open_demo)
        file_menu.addSeparator()
        file_menu.addAction("&Import Model…", self.import_model)
        file_menu.addSeparator()
        file_menu.addAction(self.actions["export_view"])
        file_menu.addAction(self.actions["export_seg"])
        file_menu.addSeparator()
        file_menu.addAction(self.actions["quit"])
        view_menu = menu.addMenu("&View")
        for name in ("fit", "one_to_one", "invert", "flip_horizontal", "flip_vertical", "reset", "next_preset", "link",
                     "grid", "next_frame",
                     "previous_frame", "next_study", "previous_study", "patient_name"):
            view_menu.addAction(self.actions[name])
        view_menu.addAction(self.side_dock.toggleViewAction())
        ai_menu = menu.addMenu("&AI")
        ai_menu.addAction(self.actions["run_ai"])
        ai_menu.addAction(self.actions["hide_overlays"])
        ai_menu.addAction(self.ai.toggleViewAction())
        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self.actions["help"])
        help_menu.addAction("&About RadLens", self.show_about)

        toolbar = self.addToolBar("Reading")
        toolbar.setObjectName("readingToolbar")
        toolbar.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonTextOnly)
        toolbar.addAction(self.actions["open_files"])
        toolbar.addSeparator()
        for name in ("fit", "one_to_one", "invert", "link", "reset"):
            toolbar.addAction(self.actions[name])
        toolbar.addSeparator()
        self.actions["run_ai"].setIconText("Run AI")
        self.actions["hide_overlays"].setIconText("Hide AI")
        toolbar.addAction(self.actions["run_ai"])
        toolbar.addAction(self.actions["hide_overlays"])
        toolbar.addSeparator()
        toolbar.addWidget(QtWidgets.QLabel(" W/L "))
        self.preset_box = QtWidgets.QComboBox()
        self.preset_box.setMinimumWidth(140)
        self.preset_box.setToolTip(f"Window/level presets of the active viewport ({keys_for('next_preset')})")
        self.preset_box.activated.connect(lambda i: self._select_preset(self.preset_box.itemText(i)))
        toolbar.addWidget(self.preset_box)

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

    # ---- opening ----------------------------------------------------------------------------
    def open_paths(self, paths: list[Path]) -> None:
        paths = [Path(p) for p in paths]
        if not paths:
            return
        self.scan_done = False
        self._pending_recent = paths
        self.studies, self.problems, self.current_study = [], [], None
        self.study_list.clear()
        self.problem_list.clear()
        self._set_problems_visible(False)
        self.study_view.show_message("Reading…")
        self.statusBar().showMessage(f"Reading {', '.join(printable(p.name or str(p)) for p in paths[:3])}"
                                     + ("…" if len(paths) > 3 else ""))
        self.loader.open_paths(paths)

    def open_demo(self) -> None:
        from platformdirs import user_cache_dir

        from app.io.demo import demo_paths

        try:
            paths = demo_paths(Path(user_cache_dir("RadLens", appauthor=False)))
        except OSError as error:
            QtWidgets.QMessageBox.warning(self, "Demo study", f"The demo study could not be written:\n{error}")
            return
        self.open_paths(paths)

    def choose_files(self) -> None:
        files, _ = QtWidgets.QFileDialog.getOpenFileNames(
            self, "Open images", "", "Images (*.dcm *.dicom *.png *.jpg *.jpeg *.ima);;All files (*)")
        if files:
            self.open_paths([Path(f) for f in files])

    def choose_folder(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Open a folder of studies")
        if folder:
            self.open_paths([Path(folder)])

    def cancel_loading(self) -> None:
        if self.loader.busy:
            self.loader.cancel()
            self.scan_done = True
            self.progress.setVisible(False)
            self.statusBar().showMessage("Loading cancelled", 5000)
            if not self.studies:
                self.study_view.show_message(WELCOME)

    def _on_scan_progress(self, done: int, total: int, name: str) -> None:
        self.progress.setVisible(True)
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.setFormat(f"Reading headers %v/%m")

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

    def next_grid(self) -> None:
        """Side-by-side images: square grid, one row, one column, and round again."""
        self.grid = GRIDS[(GRIDS.index(self.grid) + 1) % len(GRIDS)]
        if self.current_study is not None and self.current_study.is_side_by_side:
            self.show_study(self.current_study)
        self.statusBar().showMessage(f"Side-by-side grid: {self.grid}", 3000)

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

    # ---- reading actions ------------------------------------------------------------------------
    def _each(self, change) -> None:
        for state in self.study_view.target_states():
            change(state)

    def reset_view(self) -> None:
        for viewport in self.study_view.viewports:
            if viewport.state is not None:
                state = viewport.state
                with state.changed.blocker():
                    state.select_preset(state.presets[0].name)
                    state.set_invert(False)
                    state.reset_flips()
                    state.fit()
                viewport.bind(state)

    def next_preset(self) -> None:
        for state in self.study_view.target_states():
            names = [p.name for p in state.presets]
            index = names.index(state.preset_name) + 1 if state.preset_name in names else 0
            self._select_preset(names[index % len(names)])

    def _select_preset(self, name: str) -> None:
        self._each(lambda s: s.select_preset(name))
        self._on_active_viewport(self.study_view.active)

    def _on_active_viewport(self, viewport) -> None:
        self.preset_box.clear()
        state = viewport.state if viewport is not None else None
        if state is None:
            return
        self.preset_box.addItems([p.name for p in state.presets])
        if state.preset_name:
            self.preset_box.setCurrentText(state.preset_name)
        else:
            self.preset_box.setCurrentIndex(-1)

    def _step_study(self, step: int) -> None:
        if self.studies:
            self.study_list.setCurrentRow((self.study_list.currentRow() + step) % len(self.studies))

    def _set_show_patient_name(self, show: bool) -> None:
        self.settings.set_show_patient_name(show)
        self.study_view.set_show_patient_name(show)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        entries = self.settings.recent()
        if not entries:
            self.recent_menu.addAction("(none)").setEnabled(False)
        for paths in entries:
            label = ", ".join(printable(p.name or str(p)) for p in paths[:3]) + ("…" if len(paths) > 3 else "")
            action = self.recent_menu.addAction(label)
            action.setToolTip("\n".join(map(str, paths)))
            action.triggered.connect(lambda _=False, chosen=paths: self.open_paths(chosen))

    def show_help(self) -> None:
        rows = "".join(f"<tr><td><b>{s.keys}</b></td><td>{s.text}</td></tr>" for s in SHORTCUTS)
        mouse = "".join(f"<tr><td><b>{k}</b></td><td>{t}</td></tr>" for k, t in MOUSE_HELP)
        QtWidgets.QMessageBox.information(
            self, "Keyboard and mouse",
            f"<table cellspacing=6>{mouse}<tr><td colspan=2><hr></td></tr>{rows}</table>")

    def import_model(self, path: Path | None = None) -> bool:
        """Install a model package (its model.json) or an official GLAM checkpoint for this user."""
        from app.inference.manifest import ModelPackageError
        from app.inference.model_import import import_model

        if path is None:
            chosen, _ = QtWidgets.QFileDialog.getOpenFileName(
                self, "Import model", str(Path.home()),
                "Models (model.json *.ckpt *.pt *.pth);;GLAM checkpoints (*.ckpt *.pt *.pth);;"
                "Model packages (model.json)")
            if not chosen:
                return False
            path = Path(chosen)
        QtWidgets.QApplication.setOverrideCursor(QtCore.Qt.CursorShape.WaitCursor)
        try:
            manifest = import_model(path)
        except ModelPackageError as error:
            QtWidgets.QApplication.restoreOverrideCursor()
            QtWidgets.QMessageBox.warning(self, "Import model", f"{error.path.name} was not imported:\n{error.reason}")
            return False
        QtWidgets.QApplication.restoreOverrideCursor()
        self.ai.reload_models(manifest.name)
        self.statusBar().showMessage(f"Imported {manifest.name} {manifest.version} into {manifest.folder}", 10000)
        return True

    def show_about(self) -> None:
        from app import __version__

        QtWidgets.QMessageBox.about(self, "About RadLens",
                                    f"RadLens {__version__}<br>For research use; not a medical device.")

    # ---- export ------------------------------------------------------------------------------------
    def export_view(self, path: Path | None = None) -> Path | None:
        """The active viewport as shown (image, overlays, corner text) to a PNG file."""
        viewport = self.study_view.active
        if viewport is None or viewport.state is None:
            self.statusBar().showMessage("Nothing to export", 5000)
            return None
        if path is None:
            chosen, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export view", "view.png", "PNG (*.png)")
            if not chosen:
                return None
            path = Path(chosen)
        if not viewport.grab().save(str(path), "PNG"):
            QtWidgets.QMessageBox.warning(self, "Export view", f"Could not write {path}")
            return None
        self.statusBar().showMessage(f"Saved {path}", 5000)
        return path

    def export_segmentation(self, path: Path | None = None) -> Path | None:
        """The active image's segmentation as DICOM SEG (DICOM inputs only)."""
        from app.io.seg_export import SegExportError, write_dicom_seg

        viewport = self.study_view.active
        state = viewport.state if viewport is not None else None
        result = self.ai.results.get(state.image.info.identity) if state is not None else None
        if result is None or result.mask is None:
            QtWidgets.QMessageBox.information(self, "Export DICOM SEG",
                                              "Run a segmentation model on the active image first.")
            return None
        if path is None:
            chosen, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export DICOM SEG", "segmentation.dcm",
                                                              "DICOM (*.dcm)")
            if not chosen:
                return None
            path = Path(chosen)
        try:
            write_dicom_seg(state.image.info.path, result.mask >= self.ai.mask_threshold(result), path,
                            algorithm=result.model_key, frame=state.frame)
        except SegExportError as error:
            QtWidgets.QMessageBox.warning(self, "Export DICOM SEG", str(error))
            return None
        self.statusBar().showMessage(f"Saved {path}", 5000)
        return path

    # ---- drag and drop, window state ------------------------------------------------------------
    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)

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
