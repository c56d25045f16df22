"""The reading area: one `ViewportWidget` per cell of the session's hanging, with the session's layers on them.

Built from a `ReadingSession`; it draws what the session holds and reports gestures and paints back to it.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from app.core.layers import OverlayLayer
from app.core.study import Study
from app.core.viewport_state import ViewportState
from app.session import ReadingSession
from app.ui.viewport_widget import ViewportWidget


class StudyView(QtWidgets.QWidget):
    """Shows the session's hanging; images arrive one by one as the session receives them."""

    def __init__(self, session: ReadingSession, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.setObjectName("studyView")
        self.setStyleSheet("QWidget#studyView { background: #000; }")
        self.grid = QtWidgets.QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(2)
        self.viewports: list[ViewportWidget] = []
        self.viewport_by_series: dict[str, ViewportWidget] = {}
        self.show_patient_name = False
        self._enlarged: ViewportWidget | None = None
        self._message = QtWidgets.QLabel(self)
        self._message.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self._message.setWordWrap(True)
        self._message.setStyleSheet("color: #9a9a9a; font-size: 18px;")
        self.grid.addWidget(self._message, 0, 0)
        session.shown_changed.connect(self._on_shown)
        session.hanging_changed.connect(lambda: self._on_shown(session.shown))
        session.image_added.connect(self._on_image_added)
        session.series_failed.connect(self._on_series_failed)
        session.active_changed.connect(self._on_active)
        session.layers.added.connect(self._on_layer_added)
        session.layers.removed.connect(self._on_layer_removed)
        session.layers.hidden_changed.connect(self._on_hidden_changed)
        self._on_shown(session.shown)

    @property
    def active(self) -> ViewportWidget | None:
        return self.viewport_by_series.get(self.session.active) if self.session.active else None

    def show_message(self, text: str) -> None:
        self._clear()
        self._message.setText(text)
        self._message.show()

    def _clear(self) -> None:
        for viewport in self.viewports:
            viewport.unbind()
            self.grid.removeWidget(viewport)
            viewport.hide()
            viewport.deleteLater()
        self.viewports, self.viewport_by_series, self._enlarged = [], {}, None

    # ---- session events ------------------------------------------------------------------------
    def _on_shown(self, study: Study | None) -> None:
        """Build the cells of the session's hanging and draw whatever it already holds."""
        self._clear()
        hanging = self.session.hanging
        if study is None or hanging is None:
            return
        self._message.hide()
        for cell in hanging.cells:
            viewport = ViewportWidget(cell.label, self)
            viewport.anchor = cell.anchor
            viewport.show_patient_name = self.show_patient_name
            viewport.activated.connect(self.activate)
            viewport.enlarge_requested.connect(self.toggle_enlarged)
            viewport.painted.connect(self._on_painted)
            self.grid.addWidget(viewport, cell.row, cell.column)
            self.viewports.append(viewport)
            if cell.series is not None:
                self.viewport_by_series[cell.series.identity] = viewport
                viewport.show_placeholder(f"{cell.label}\nloading…")
        for row in range(max(hanging.rows, self.grid.rowCount())):
            self.grid.setRowStretch(row, 1 if row < hanging.rows else 0)
        for column in range(max(hanging.columns, self.grid.columnCount())):
            self.grid.setColumnStretch(column, 1 if column < hanging.columns else 0)
        for series_identity, state in self.session.states.items():
            self._on_image_added(series_identity, state)
        for series_identity, reason in self.session.failed.items():
            self._on_series_failed(series_identity, reason)
        self._on_active(self.session.active)

    def _on_image_added(self, series_identity: str, state: ViewportState) -> None:
        viewport = self.viewport_by_series.get(series_identity)
        if viewport is None:
            return
        viewport.bind(state)
        for layer in self.session.layers.for_image(state.image.info.identity):
            viewport.add_layer(layer, hidden=self.session.layers.all_hidden)

    def _on_series_failed(self, series_identity: str, reason: str) -> None:
        viewport = self.viewport_by_series.get(series_identity)
        if viewport is not None:
            viewport.show_placeholder(f"{viewport.label}\ncould not be opened:\n{reason}")

    def _on_active(self, series_identity: str | None) -> None:
        for identity, viewport in self.viewport_by_series.items():
            viewport.set_active(identity == series_identity)

    def _viewport_for(self, image_identity: str) -> ViewportWidget | None:
        return next((v for v in self.viewports if v.state is not None and v.state.image.info.identity == image_identity),
                    None)

    def _on_layer_added(self, layer: OverlayLayer) -> None:
        viewport = self._viewport_for(layer.image_identity)
        if viewport is not None:
            viewport.add_layer(layer, hidden=self.session.layers.all_hidden)

    def _on_layer_removed(self, layer: OverlayLayer) -> None:
        viewport = self._viewport_for(layer.image_identity)
        if viewport is not None and layer in viewport.overlays:
            viewport.remove_layer(layer)

    def _on_hidden_changed(self, hidden: bool) -> None:
        for viewport in self.viewports:
            viewport.set_overlays_hidden(hidden)

    # ---- gestures ------------------------------------------------------------------------------
    def _series_of(self, viewport: ViewportWidget) -> str | None:
        return next((s for s, v in self.viewport_by_series.items() if v is viewport), None)

    def activate(self, viewport: ViewportWidget) -> None:
        """The reader clicked a viewport: its image becomes the active one."""
        series_identity = self._series_of(viewport)
        if series_identity is not None:
            self.session.set_active(series_identity)

    def _on_painted(self, viewport: ViewportWidget) -> None:
        series_identity = self._series_of(viewport)
        if series_identity is not None:
            self.session.mark_painted(series_identity)

    def set_show_patient_name(self, show: bool) -> None:
        self.show_patient_name = show
        for viewport in self.viewports:
            viewport.show_patient_name = show
            if viewport.state is not None:
                viewport._update_corners()

    def toggle_enlarged(self, viewport: ViewportWidget) -> None:
        """Double-click: show one viewport alone, again to return to the hanging."""
        self._enlarged = None if self._enlarged is viewport else viewport
        for other in self.viewports:
            other.setVisible(self._enlarged is None or other is self._enlarged)
        self.activate(viewport)
