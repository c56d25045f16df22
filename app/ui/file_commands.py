"""File commands of the main window: open files, folders and the demo, import models, export views and masks, drag and drop."""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from app.core.text import printable

WELCOME = "Drop DICOM, PNG or JPEG files or folders here\nor use File > Open (Ctrl+O)"


class FileCommands:
    """Mixed into MainWindow (app/ui/main_window.py), whose widgets and loader it uses."""

    def open_paths(self, paths: list[Path]) -> None:
        paths = [Path(p) for p in paths]
        if not paths:
            return
        self._pending_recent = paths
        self.session.start_reading()
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

    def show_pacs(self) -> None:
        """The PACS panel, made on first use (pynetdicom is loaded then, not when the window opens)."""
        from app.ui.pacs_panel import PacsPanel

        if self.pacs_panel is None:
            self.pacs_panel = PacsPanel(self.open_paths, self)
            self.addDockWidget(QtCore.Qt.DockWidgetArea.BottomDockWidgetArea, self.pacs_panel)
            self.resizeDocks([self.pacs_panel], [300], QtCore.Qt.Orientation.Vertical)
        self.pacs_panel.show()
        self.pacs_panel.raise_()
        self.pacs_panel.name_edit.setFocus()

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
            self.session.cancel_reading()
            self.progress.setVisible(False)
            self.statusBar().showMessage("Loading cancelled", 5000)
            if not self.session.studies:
                self.study_view.show_message(WELCOME)

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
        if not viewport.canvas.grab().save(str(path), "PNG"):  # the image as drawn, without the cell border
            QtWidgets.QMessageBox.warning(self, "Export view", f"Could not write {path}")
            return None
        self.session.record_export(path, "view", viewport.state.image.info.identity)
        self.statusBar().showMessage(f"Saved {path}", 5000)
        return path

    def export_segmentation(self, path: Path | None = None) -> Path | None:
        """The active image's segmentation as DICOM SEG (DICOM inputs only)."""
        from app.io.seg_export import SegExportError, write_dicom_seg

        state = self.session.active_state
        result = self.session.result_for(self.session.active)
        if result is None or result.mask is None:
            why = (f"The active image has no lesion mask: {result.mask_note}." if result is not None and result.mask_note
                   else "Run a segmentation model on the active image first.")
            QtWidgets.QMessageBox.information(self, "Export DICOM SEG", why)
            return None
        if path is None:
            chosen, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export DICOM SEG", "segmentation.dcm",
                                                              "DICOM (*.dcm)")
            if not chosen:
                return None
            path = Path(chosen)
        try:
            write_dicom_seg(state.image.info.path, result.mask >= result.threshold, path,
                            algorithm=result.mask_source, frame=state.frame)
        except SegExportError as error:
            QtWidgets.QMessageBox.warning(self, "Export DICOM SEG", str(error))
            return None
        self.session.record_export(path, "DICOM SEG", result.image_identity)
        self.statusBar().showMessage(f"Saved {path}", 5000)
        return path

    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)
