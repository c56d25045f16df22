"""One viewport: draws a `ViewportState` with pyqtgraph and turns mouse gestures into state changes.

Left drag pans, right drag sets window/level, the wheel zooms about the pointer, double-click
asks the study view to enlarge this viewport. Corner text shows laterality and view, W/L, zoom.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app.core.display import downsample_for_display
from app.core.layers import HEATMAP, MASK, PATCHES, OverlayLayer
from app.core.viewport_state import Change, ViewportState

CORNER_STYLE = "color: #f2e7a0; background: rgba(0, 0, 0, 150); font-size: 12px; padding: 1px 3px;"
LABEL_STYLE = "color: #f2e7a0; background: rgba(0, 0, 0, 150); font-size: 15px; font-weight: 600; padding: 1px 3px;"
WHEEL_STEP = 1.15
# Overlays are drawn from maps no larger than this (heatmaps come from <= 32 x 32 feature maps; mask
# outlines stay full resolution): building and painting full-size RGBA stalled the UI ~0.3 s per image.
OVERLAY_MAX_SIDE = 768
OUTLINE_COLOURS = {MASK: (255, 80, 80), PATCHES: (80, 220, 255), HEATMAP: (0, 0, 0, 0)}


def _path_of(polygons) -> QtGui.QPainterPath:
    path = QtGui.QPainterPath()
    for points in polygons:
        path.addPolygon(QtGui.QPolygonF([QtCore.QPointF(float(x), float(y)) for x, y in points]))
    return path


class NotifyingImageItem(pg.ImageItem):
    """An ImageItem that says when it has painted its current image (for 'drawn' and benchmarks)."""

    def __init__(self, on_painted) -> None:
        super().__init__(axisOrder="row-major", autoDownsample=True)
        self._on_painted = on_painted

    def render(self) -> None:
        """pyqtgraph's render, but the shrinking for the screen is done by the core's area resize."""
        full = self.image
        factors = self._computeDownsampleFactors() if self.autoDownsample and full is not None else None
        if factors is None or factors[0] is None or tuple(factors) == (1, 1):
            return super().render()
        small = downsample_for_display(full, factors)
        if small is None:
            return super().render()
        self.image, self.autoDownsample = small, False
        try:
            super().render()
        finally:
            self.image, self.autoDownsample = full, True
        self._lastDownsample = tuple(factors)

    def paint(self, painter, *args) -> None:
        super().paint(painter, *args)
        if self.image is not None:
            self._on_painted()


class ImageCanvas(pg.GraphicsView):
    """The drawing surface; forwards mouse gestures to its viewport in screen pixels."""

    def __init__(self, viewport: ViewportWidget) -> None:
        super().__init__(background="k")
        self._viewport = viewport
        self._last: QtCore.QPointF | None = None
        self._button = QtCore.Qt.MouseButton.NoButton
        self.setAcceptDrops(False)

    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:
        self._last, self._button = event.position(), event.button()
        self._viewport.activated.emit(self._viewport)
        event.accept()

    def mouseMoveEvent(self, event: QtGui.QMouseEvent) -> None:
        if self._last is None:
            return
        delta = event.position() - self._last
        self._last = event.position()
        self._viewport.drag(self._button, delta.x(), delta.y())
        event.accept()

    def mouseReleaseEvent(self, event: QtGui.QMouseEvent) -> None:
        self._last, self._button = None, QtCore.Qt.MouseButton.NoButton
        event.accept()

    def mouseDoubleClickEvent(self, event: QtGui.QMouseEvent) -> None:
        self._viewport.enlarge_requested.emit(self._viewport)
        event.accept()

    def wheelEvent(self, event: QtGui.QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps:
            at = (event.position().x() / max(self.width(), 1), event.position().y() / max(self.height(), 1))
            self._viewport.zoom(WHEEL_STEP**steps, at)
        event.accept()


class ViewportWidget(QtWidgets.QFrame):
    """A cell of the hanging: empty with its label, or an image with corner text and frame slider."""

    activated = QtCore.Signal(object)
    enlarge_requested = QtCore.Signal(object)
    painted = QtCore.Signal(object)

    def __init__(self, label: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = label
        self.state: ViewportState | None = None
        self.has_painted = False
        self.setObjectName("viewport")
        self.setFrameShape(QtWidgets.QFrame.Shape.Box)
        self.set_active(False)
        self.canvas = ImageCanvas(self)
        self.view_box = pg.ViewBox(enableMouse=False, enableMenu=False, invertY=True, defaultPadding=0)
        self.canvas.setCentralItem(self.view_box)
        self.image_item = NotifyingImageItem(self._on_item_painted)
        self.view_box.addItem(self.image_item)
        self.frame_slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.frame_slider.setVisible(False)
        self.frame_slider.valueChanged.connect(self._on_slider)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(1, 1, 1, 1)
        layout.setSpacing(0)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.frame_slider)
        self.corners = {name: self._corner_label() for name in ("tl", "tr", "bl", "br")}
        self.corners["tl"].setStyleSheet(LABEL_STYLE)
        self.placeholder = QtWidgets.QLabel(self.canvas)
        self.placeholder.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setStyleSheet("color: #8a8a8a; font-size: 16px; background: transparent;")
        self.show_placeholder(f"{label}\nnot in this study")
        self.show_patient_name = False
        self.overlays: dict[OverlayLayer, list] = {}
        self.overlays_hidden = False

    # ---- binding to the state ------------------------------------------------------------------
    def bind(self, state: ViewportState) -> None:
        self.state = state
        self.placeholder.hide()
        frames = state.image.frame_count
        self.frame_slider.setVisible(frames > 1)
        self.frame_slider.setRange(0, frames - 1)
        state.changed.connect(self._on_state_changed)
        state.set_viewport_size(self.canvas.width(), self.canvas.height())
        self._draw_image()
        self._draw_geometry()
        self._update_corners()

    def unbind(self) -> None:
        for layer in list(self.overlays):
            self.remove_layer(layer)
        if self.state is not None:
            self.state.changed.disconnect(self._on_state_changed)
        self.state = None

    # ---- overlay layers ------------------------------------------------------------------------
    def add_layer(self, layer: OverlayLayer, hidden: bool) -> None:
        """Draw a layer above the image: an RGBA image item and/or outline paths, same transform."""
        items, transforms = [], []
        rgba, (sx, sy) = layer.display_rgba(OVERLAY_MAX_SIDE)
        if rgba.size:
            items.append(pg.ImageItem(rgba, axisOrder="row-major", autoDownsample=False, levels=(0, 255)))
            transforms.append(QtGui.QTransform.fromScale(sx, sy) * self._reading_transform())
        outline = QtWidgets.QGraphicsPathItem()
        pen = QtGui.QPen(QtGui.QColor(*OUTLINE_COLOURS[layer.kind]))
        pen.setCosmetic(True)
        pen.setWidthF(2.0)
        outline.setPen(pen)
        outline.setPath(_path_of(layer.contours()))
        items.append(outline)
        transforms.append(self._reading_transform())
        for z, (item, transform) in enumerate(zip(items, transforms)):
            item.setTransform(transform)
            item.setZValue(10 + len(self.overlays) * 2 + z)
            self.view_box.addItem(item)
        self.overlays[layer] = items
        layer.changed.connect(self._on_layer_changed)
        self._show_layer(layer, hidden)

    def remove_layer(self, layer: OverlayLayer) -> None:
        for item in self.overlays.pop(layer, []):
            self.view_box.removeItem(item)
        layer.changed.disconnect(self._on_layer_changed)

    def set_overlays_hidden(self, hidden: bool) -> None:
        self.overlays_hidden = hidden
        for layer in self.overlays:
            self._show_layer(layer, hidden)

    def _show_layer(self, layer: OverlayLayer, hidden: bool) -> None:
        for item in self.overlays.get(layer, []):
            item.setVisible(layer.visible and not hidden)
            item.setOpacity(layer.opacity if isinstance(item, pg.ImageItem) else max(layer.opacity, 0.35))

    def _on_layer_changed(self, layer: OverlayLayer, what: str) -> None:
        items = self.overlays.get(layer, [])
        if what in ("colormap", "threshold"):
            for item in items:
                if isinstance(item, pg.ImageItem):
                    item.setImage(layer.display_rgba(OVERLAY_MAX_SIDE)[0], levels=(0, 255))
                else:
                    item.setPath(_path_of(layer.contours()))
        self._show_layer(layer, self.overlays_hidden)

    def show_placeholder(self, text: str) -> None:
        self.placeholder.setText(text)
        self.placeholder.show()
        self._place_overlays()

    def _on_state_changed(self, change: Change) -> None:
        if change.kind in ("window", "preset", "invert"):
            self._apply_transfer()
        elif change.kind == "frame":
            self._draw_image()
            with QtCore.QSignalBlocker(self.frame_slider):
                self.frame_slider.setValue(self.state.frame)
        else:
            self._draw_geometry()
        self._update_corners()

    def _reading_transform(self) -> QtGui.QTransform:
        """Image pixel grid -> display coordinates (the hanging's flips)."""
        state = self.state
        width, height = state.image_size
        flip = QtGui.QTransform()
        flip.translate(width if state.flip_h else 0, height if state.flip_v else 0)
        flip.scale(-1 if state.flip_h else 1, -1 if state.flip_v else 1)
        return flip

    def _draw_image(self) -> None:
        state = self.state
        transfer = state.transfer()
        self.image_item.setImage(state.image.frame(state.frame), autoLevels=False,
                                 levels=transfer.levels, lut=transfer.lut)
        self.image_item.setTransform(self._reading_transform())
        with QtCore.QSignalBlocker(self.frame_slider):
            self.frame_slider.setValue(state.frame)

    def _apply_transfer(self) -> None:
        transfer = self.state.transfer()
        self.image_item.setLookupTable(transfer.lut, update=False)
        self.image_item.setLevels(transfer.levels)

    def _draw_geometry(self) -> None:
        x, y, w, h = self.state.visible_rect()
        self.view_box.setRange(QtCore.QRectF(x, y, w, h), padding=0)

    def _update_corners(self) -> None:
        state, info = self.state, self.state.image.info
        self.corners["tl"].setText(info.label)
        right = [info.patient_name] if self.show_patient_name and info.patient_name else []
        right.append(info.modality)
        self.corners["tr"].setText("\n".join(t for t in right if t))
        self.corners["bl"].setText(state.window_text() + (" inverted" if state.invert else ""))
        lines = [f"frame {state.frame + 1}/{state.image.frame_count}"] if state.image.frame_count > 1 else []
        if info.pixel_spacing:
            lines.append(f"{info.pixel_spacing[1]:.3g} mm/px")
        lines.append(state.zoom_text())
        self.corners["br"].setText("  ".join(lines))
        for label in self.corners.values():
            label.adjustSize()
        self._place_overlays()

    # ---- gestures from the canvas --------------------------------------------------------------
    def drag(self, button: QtCore.Qt.MouseButton, dx: float, dy: float) -> None:
        if self.state is None:
            return
        if button == QtCore.Qt.MouseButton.LeftButton:
            self.state.pan_by(dx, dy)
        elif button == QtCore.Qt.MouseButton.RightButton:
            self.state.drag_window(dx, dy)

    def zoom(self, factor: float, at: tuple[float, float]) -> None:
        if self.state is not None:
            self.state.zoom_by(factor, at)

    def _on_slider(self, value: int) -> None:
        if self.state is not None:
            self.state.set_frame(value)

    def set_active(self, active: bool) -> None:
        colour = "#3d7bd9" if active else "#202020"
        self.setStyleSheet(f"QFrame#viewport {{ border: 1px solid {colour}; background: black; }}")

    def _on_item_painted(self) -> None:
        if not self.has_painted:
            self.has_painted = True
            self.painted.emit(self)

    # ---- layout of overlays ------------------------------------------------------------------
    def _corner_label(self) -> QtWidgets.QLabel:
        label = QtWidgets.QLabel(self.canvas)
        label.setStyleSheet(CORNER_STYLE)
        label.setAttribute(QtCore.Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        return label

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        super().resizeEvent(event)
        if self.state is not None:
            self.state.set_viewport_size(self.canvas.width(), self.canvas.height())
        self._place_overlays()

    def showEvent(self, event: QtGui.QShowEvent) -> None:
        super().showEvent(event)
        if self.state is not None:
            self.state.set_viewport_size(self.canvas.width(), self.canvas.height())
        self._place_overlays()

    def _place_overlays(self) -> None:
        w, h, m = self.canvas.width(), self.canvas.height(), 6
        c = self.corners
        c["tl"].move(m, m)
        c["tr"].move(w - c["tr"].width() - m, m)
        c["bl"].move(m, h - c["bl"].height() - m)
        c["br"].move(w - c["br"].width() - m, h - c["br"].height() - m)
        self.placeholder.setGeometry(0, 0, w, h)
