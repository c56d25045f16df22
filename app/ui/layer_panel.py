"""Controls for the overlay layers of the active image, bound both ways to the Qt-free layers."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from app.core.colormaps import COLOUR_BLIND_SAFE, NAMES, colormap_table
from app.core.layers import HEATMAP, MASK, OverlayLayer


class LayerControls(QtWidgets.QFrame):
    """One layer: visibility, opacity, colour map with colour bar, or mask threshold."""

    def __init__(self, layer: OverlayLayer, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.layer = layer
        self.setFrameShape(QtWidgets.QFrame.Shape.StyledPanel)
        form = QtWidgets.QFormLayout(self)
        form.setContentsMargins(6, 4, 6, 4)
        self.visible_box = QtWidgets.QCheckBox(layer.name)
        self.visible_box.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Fixed)
        self.visible_box.setToolTip(f"From {layer.source}")
        self.visible_box.toggled.connect(lambda on: setattr(layer, "visible", on))
        form.addRow(self.visible_box)
        self.opacity_slider = self._slider(lambda v: setattr(layer, "opacity", v / 100))
        self.opacity_label = QtWidgets.QLabel()
        form.addRow("Opacity", self._with_label(self.opacity_slider, self.opacity_label))
        self.colormap_box = self.threshold_slider = self.threshold_label = self.colorbar = None
        if layer.kind == HEATMAP:
            self.colormap_box = QtWidgets.QComboBox()
            self.colormap_box.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            self.colormap_box.setMinimumContentsLength(8)
            for name in NAMES:
                self.colormap_box.addItem(name + (" (colour-blind safe)" if name in COLOUR_BLIND_SAFE else ""), name)
            self.colormap_box.currentIndexChanged.connect(
                lambda i: setattr(layer, "colormap", self.colormap_box.itemData(i)))
            form.addRow("Colours", self.colormap_box)
            self.colorbar = QtWidgets.QLabel()
            self.colorbar.setFixedHeight(12)
            self.colorbar.setScaledContents(True)
            form.addRow("", self.colorbar)
            self.range_label = QtWidgets.QLabel(layer.range_text)
            self.range_label.setStyleSheet("color: #777; font-size: 11px;")
            form.addRow("", self.range_label)
        if layer.kind == MASK:
            self.threshold_slider = self._slider(lambda v: setattr(layer, "threshold", v / 100))
            self.threshold_label = QtWidgets.QLabel()
            form.addRow("Threshold", self._with_label(self.threshold_slider, self.threshold_label))
        layer.changed.connect(self._on_layer_changed)
        self._refresh()

    def detach(self) -> None:
        self.layer.changed.disconnect(self._on_layer_changed)

    def _slider(self, on_change) -> QtWidgets.QSlider:
        slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        slider.setRange(0, 100)
        slider.setMinimumWidth(60)
        slider.valueChanged.connect(on_change)
        return slider

    @staticmethod
    def _with_label(slider: QtWidgets.QSlider, label: QtWidgets.QLabel) -> QtWidgets.QWidget:
        box = QtWidgets.QWidget()
        row = QtWidgets.QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        label.setMinimumWidth(40)
        row.addWidget(slider, 1)
        row.addWidget(label)
        return box

    def _on_layer_changed(self, _layer: OverlayLayer, _what: str) -> None:
        self._refresh()

    def _refresh(self) -> None:
        """Show the layer's values without writing them back (signals blocked)."""
        layer = self.layer
        with QtCore.QSignalBlocker(self.visible_box):
            self.visible_box.setChecked(layer.visible)
        with QtCore.QSignalBlocker(self.opacity_slider):
            self.opacity_slider.setValue(round(layer.opacity * 100))
        self.opacity_label.setText(f"{layer.opacity * 100:.0f}%")
        if self.colormap_box is not None:
            with QtCore.QSignalBlocker(self.colormap_box):
                self.colormap_box.setCurrentIndex(self.colormap_box.findData(layer.colormap))
            table = colormap_table(layer.colormap)
            image = QtGui.QImage(table.tobytes(), 256, 1, 256 * 3, QtGui.QImage.Format.Format_RGB888).copy()
            self.colorbar.setPixmap(QtGui.QPixmap.fromImage(image))
        if self.threshold_slider is not None:
            with QtCore.QSignalBlocker(self.threshold_slider):
                self.threshold_slider.setValue(round(layer.threshold * 100))
            self.threshold_label.setText(f"p ≥ {layer.threshold:.2f}")


class LayerPanel(QtWidgets.QScrollArea):
    """Lists the LayerControls of the layers on the active image."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Preferred, QtWidgets.QSizePolicy.Policy.Expanding)
        self.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # rows shrink instead
        self._body = QtWidgets.QWidget()
        self._rows = QtWidgets.QVBoxLayout(self._body)
        self._rows.setContentsMargins(2, 2, 2, 2)
        self._rows.addStretch(1)
        self.setWidget(self._body)
        self.controls: list[LayerControls] = []
        self.setMinimumHeight(self._least_height())
        self.empty_label = QtWidgets.QLabel("No AI layers yet: run a model (Ctrl+R).")
        self.empty_label.setWordWrap(True)
        self._rows.insertWidget(0, self.empty_label)

    def show_layers(self, layers: list[OverlayLayer]) -> None:
        for control in self.controls:
            control.detach()
            self._rows.removeWidget(control)
            control.deleteLater()
        self.controls = [LayerControls(layer) for layer in layers]
        for index, control in enumerate(self.controls):
            self._rows.insertWidget(index, control)
        self.empty_label.setVisible(not layers)
        self.setMinimumHeight(self._least_height())

    def _least_height(self) -> int:
        """Room for the tallest layer's controls, colour bar and range included, whatever else the dock holds."""
        tallest = max((control.sizeHint().height() for control in self.controls), default=0)
        margins = self._rows.contentsMargins()
        return max(8 * self.fontMetrics().height(), tallest + margins.top() + margins.bottom() + 2 * self.frameWidth())
