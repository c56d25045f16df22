"""The reading area: one `ViewportWidget` per cell of a study's hanging, linked when asked."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from app.core.hanging import Hanging, reading_flips
from app.core.image import LoadedImage
from app.core.study import Series
from app.core.viewport_state import ViewportLink, ViewportState
from app.ui.viewport_widget import ViewportWidget


class StudyView(QtWidgets.QWidget):
    """Shows a `Hanging`; images arrive one by one through `show_image` as they are decoded."""

    active_changed = QtCore.Signal(object)  # the active ViewportWidget
    all_painted = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("studyView")
        self.setStyleSheet("QWidget#studyView { background: #000; }")
        self.grid = QtWidgets.QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(2)
        self.viewports: list[ViewportWidget] = []
        self.viewport_by_series: dict[str, ViewportWidget] = {}
        self._expected: set[str] = set()
        self.active: ViewportWidget | None = None
        self.link_enabled = False
        self.link = ViewportLink(enabled=False)
        self.show_patient_name = False
        self._enlarged: ViewportWidget | None = None
        self._message = QtWidgets.QLabel(self)
        self._message.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self._message.setWordWrap(True)
        self._message.setStyleSheet("color: #9a9a9a; font-size: 18px;")
        self.grid.addWidget(self._message, 0, 0)

    def show_message(self, text: str) -> None:
        self.clear()
        self._message.setText(text)
        self._message.show()

    def clear(self) -> None:
        for viewport in self.viewports:
            viewport.unbind()
            self.grid.removeWidget(viewport)
            viewport.hide()
            viewport.deleteLater()
        self.viewports, self.viewport_by_series, self._expected = [], {}, set()
        self.active, self._enlarged = None, None
        self.link = ViewportLink(enabled=self.link_enabled)

    def set_hanging(self, hanging: Hanging, link: bool) -> None:
        self.link_enabled = link
        self.clear()
        self._message.hide()
        for cell in hanging.cells:
            viewport = ViewportWidget(cell.label, self)
            viewport.anchor = cell.anchor
            viewport.show_patient_name = self.show_patient_name
            viewport.activated.connect(self.set_active)
            viewport.enlarge_requested.connect(self.toggle_enlarged)
            viewport.painted.connect(self._on_painted)
            self.grid.addWidget(viewport, cell.row, cell.column)
            self.viewports.append(viewport)
            if cell.series is not None:
                self.viewport_by_series[cell.series.identity] = viewport
                self._expected.add(cell.series.identity)
                viewport.show_placeholder(f"{cell.label}\nloading…")
        for row in range(max(hanging.rows, self.grid.rowCount())):
            self.grid.setRowStretch(row, 1 if row < hanging.rows else 0)
        for column in range(max(hanging.columns, self.grid.columnCount())):
            self.grid.setColumnStretch(column, 1 if column < hanging.columns else 0)
        if self.viewports:
            self.set_active(self.viewports[0])

    def show_image(self, series: Series, image: LoadedImage) -> None:
        viewport = self.viewport_by_series.get(series.identity)
        if viewport is None:
            return
        flip_h, flip_v = reading_flips(image.info, image.frame(0))
        state = ViewportState(image, flip_h=flip_h, flip_v=flip_v, anchor=viewport.anchor)
        viewport.bind(state)
        self.link.add(state)

    def mark_failed(self, series: Series, reason: str) -> None:
        viewport = self.viewport_by_series.get(series.identity)
        if viewport is not None:
            self._expected.discard(series.identity)
            viewport.show_placeholder(f"{viewport.label}\ncould not be opened:\n{reason}")
            self._check_all_painted()

    def set_link_enabled(self, enabled: bool) -> None:
        self.link_enabled = enabled
        self.link.enabled = enabled

    def set_show_patient_name(self, show: bool) -> None:
        self.show_patient_name = show
        for viewport in self.viewports:
            viewport.show_patient_name = show
            if viewport.state is not None:
                viewport._update_corners()

    def set_active(self, viewport: ViewportWidget) -> None:
        if self.active is not None and self.active is not viewport:
            self.active.set_active(False)
        self.active = viewport
        viewport.set_active(True)
        self.active_changed.emit(viewport)

    def target_states(self) -> list[ViewportState]:
        """The states a toolbar action applies to: the active one (links repeat it elsewhere)."""
        if self.active is not None and self.active.state is not None:
            return [self.active.state]
        return [v.state for v in self.viewports if v.state is not None][:1]

    def toggle_enlarged(self, viewport: ViewportWidget) -> None:
        """Double-click: show one viewport alone, again to return to the hanging."""
        self._enlarged = None if self._enlarged is viewport else viewport
        for other in self.viewports:
            other.setVisible(self._enlarged is None or other is self._enlarged)
        self.set_active(viewport)

    @property
    def is_fully_painted(self) -> bool:
        painted = {sid for sid, v in self.viewport_by_series.items() if v.has_painted}
        return bool(self.viewport_by_series) and self._expected <= painted

    def _on_painted(self, _viewport: ViewportWidget) -> None:
        self._check_all_painted()

    def _check_all_painted(self) -> None:
        if self.is_fully_painted:
            self.all_painted.emit()
