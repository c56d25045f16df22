"""One viewport: draws a `ViewportState` with pyqtgraph and turns mouse gestures into state changes.

Left drag pans, right drag sets window/level, the wheel zooms about the pointer, double-click
asks the study view to enlarge this viewport. Corner text shows laterality and view, W/L, zoom.
"""

from __future__ import annotations

import functools

import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app.core.display import downsample_for_display, drawable, drawable_transfer
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


def _padding(label: QtWidgets.QLabel) -> int:
    return _padding_of_style(label.styleSheet())


@functools.lru_cache(maxsize=8)
def _padding_of_style(style: str) -> int:
    """Width a label of this style adds around its text (padding, margins), measured, plus a pixel."""
    probe = QtWidgets.QLabel("M")
    probe.setStyleSheet(style)
    probe.ensurePolished()
    return probe.sizeHint().width() - probe.fontMetrics().horizontalAdvance("M") + 1


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
        self.markers = {edge: self._corner_label() for edge in ("left", "right", "top", "bottom")}
        self._corner_items: dict[str, list[str]] = {}
        self.placeholder = QtWidgets.QLabel(self.canvas)
        self.placeholder.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setStyleSheet("color: #8a8a8a; font-size: 16px; background: transparent;")
        self.show_placeholder(f"{label}\nnot in this study")
        self.show_patient_name = False
        self.overlays: dict[OverlayLayer, list] = {}
        self._overlay_scales: dict[OverlayLayer, tuple[float, float]] = {}
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
        self._corner_items = {}
        for marker in self.markers.values():
            marker.setText("")

    # ---- overlay layers ------------------------------------------------------------------------
    def add_layer(self, layer: OverlayLayer, hidden: bool) -> None:
        """Draw a layer above the image: an RGBA image item and/or outline paths, same transform."""
        items = []
        rgba, scale = layer.display_rgba(OVERLAY_MAX_SIDE)
        self._overlay_scales[layer] = scale
        if rgba.size:
            items.append(pg.ImageItem(rgba, axisOrder="row-major", autoDownsample=False, levels=(0, 255)))
        outline = QtWidgets.QGraphicsPathItem()
        pen = QtGui.QPen(QtGui.QColor(*OUTLINE_COLOURS[layer.kind]))
        pen.setCosmetic(True)
        pen.setWidthF(2.0)
        outline.setPen(pen)
        outline.setPath(_path_of(layer.contours()))
        items.append(outline)
        for z, item in enumerate(items):
            item.setZValue(10 + len(self.overlays) * 2 + z)
            self.view_box.addItem(item)
        self.overlays[layer] = items
        self._refresh_layer_transforms()
        layer.changed.connect(self._on_layer_changed)
        self._show_layer(layer, hidden)

    def _refresh_layer_transforms(self) -> None:
        """Overlays follow the image's flips: RGBA maps scaled from their size, outlines as they are."""
        reading = self._reading_transform()
        for layer, items in self.overlays.items():
            sx, sy = self._overlay_scales[layer]
            for item in items:
                scaled = isinstance(item, pg.ImageItem)
                item.setTransform(QtGui.QTransform.fromScale(sx, sy) * reading if scaled else reading)

    def remove_layer(self, layer: OverlayLayer) -> None:
        for item in self.overlays.pop(layer, []):
            self.view_box.removeItem(item)
        self._overlay_scales.pop(layer, None)
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
        elif change.kind == "reset":
            self._draw_image()
            self._refresh_layer_transforms()
            self._draw_geometry()
        elif change.kind == "flip":
            self.image_item.setTransform(self._reading_transform())
            self._refresh_layer_transforms()
            self._draw_geometry()
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
        pixels, transfer = drawable(state.image.frame(state.frame), state.transfer())
        self.image_item.setImage(pixels, autoLevels=False, levels=transfer.levels, lut=transfer.lut)
        self.image_item.setTransform(self._reading_transform())
        with QtCore.QSignalBlocker(self.frame_slider):
            self.frame_slider.setValue(state.frame)

    def _apply_transfer(self) -> None:
        transfer = drawable_transfer(self.state.image.frame(self.state.frame).dtype, self.state.transfer())
        self.image_item.setLookupTable(transfer.lut, update=False)
        self.image_item.setLevels(transfer.levels)

    def _draw_geometry(self) -> None:
        x, y, w, h = self.state.visible_rect()
        self.view_box.setRange(QtCore.QRectF(x, y, w, h), padding=0)

    def _update_corners(self) -> None:
        """Corner texts as items in order of importance; `_place_overlays` fits them to the size."""
        state, info = self.state, self.state.image.info
        right = [info.patient_name] if self.show_patient_name and info.patient_name else []
        bottom_right = [state.zoom_text()]
        if state.image.frame_count > 1:
            bottom_right.insert(0, f"frame {state.frame + 1}/{state.image.frame_count}")
        if info.pixel_spacing:
            bottom_right.append(f"{info.pixel_spacing[1]:.3g} mm/px")
        self._corner_items = {
            "tl": [self.label],  # the cell's label: the view, and in a comparison whose it is and its date
            "tr": [t for t in (*right, info.modality) if t],
            "bl": [state.window_text() + (" inverted" if state.invert else "")],
            "br": bottom_right,
        }
        markers = state.orientation_markers()
        for edge, label in self.markers.items():
            label.setText(markers.get(edge, ""))
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
        """Corner texts never overlap: the right-hand text of a row wraps, then drops its least
        important items (last in its list), then hides; the left-hand one is elided to the width."""
        w, h, m = self.canvas.width(), self.canvas.height(), 6
        c = self.corners
        for left, right in (("tl", "tr"), ("bl", "br")):
            self._fit_left(c[left], self._corner_items.get(left, []), w - 2 * m)
            self._fit_right(c[right], self._corner_items.get(right, []), w - c[left].width() - 3 * m)
        c["tl"].move(m, m)
        c["tr"].move(w - c["tr"].width() - m, m)
        c["bl"].move(m, h - c["bl"].height() - m)
        c["br"].move(w - c["br"].width() - m, h - c["br"].height() - m)
        k = self.markers
        k["left"].move(m, (h - k["left"].height()) // 2)
        k["right"].move(w - k["right"].width() - m, (h - k["right"].height()) // 2)
        k["top"].move((w - k["top"].width()) // 2, m)
        k["bottom"].move((w - k["bottom"].width()) // 2, h - k["bottom"].height() - m)
        shown = [label for label in c.values() if label.text()]
        for marker in k.values():
            clear = all(not marker.geometry().intersects(other.geometry()) for other in shown)
            marker.setVisible(bool(marker.text()) and clear and self.state is not None)
            if marker.isVisible():
                shown.append(marker)
        self.placeholder.setGeometry(0, 0, w, h)

    @staticmethod
    def _fit_left(label: QtWidgets.QLabel, items: list[str], width: int) -> None:
        label.ensurePolished()  # the style sheet's font, not the default one
        metrics, pad = label.fontMetrics(), _padding(label)
        lines = [metrics.elidedText(line, QtCore.Qt.TextElideMode.ElideRight, max(width - pad, 0))
                 for line in "  ".join(items).split("\n")]  # each line elided on its own
        label.setText("\n".join(lines))
        label.setVisible(any(lines) and max(metrics.horizontalAdvance(line) for line in lines) + pad <= width)
        label.adjustSize()

    @staticmethod
    def _fit_right(label: QtWidgets.QLabel, items: list[str], width: int) -> None:
        label.ensurePolished()
        metrics, pad = label.fontMetrics(), _padding(label)
        for count in range(len(items), 0, -1):
            kept = items[:count]
            for text in ("  ".join(kept), "\n".join(kept)):
                if max(metrics.horizontalAdvance(line) for line in text.split("\n")) + pad <= width:
                    label.setText(text)
                    label.setVisible(True)
                    label.adjustSize()
                    return
        label.setText("")
        label.setVisible(False)
