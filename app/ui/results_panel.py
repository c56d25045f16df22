"""What the models said: class probabilities as bars, each task's notes (tasks/), and mammography scores per
view, breast and exam. It shows text its inputs give; it computes no pixels."""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from app.core.scores import ExamScores
from app.inference.results import InferenceResult
from app.inference.tasks import TASKS


class ResultsPanel(QtWidgets.QScrollArea):
    """Asks for the height of all it shows and scrolls when the window is shorter (a four-view exam's table,
    a prior's rows and the magnified patch must not make the window taller than a laptop's screen)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        body = QtWidgets.QWidget()
        self.setWidget(body)
        self.setWidgetResizable(True)
        self.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # no taller than what it shows: height left over goes to the layer controls below it
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Preferred, QtWidgets.QSizePolicy.Policy.Maximum)
        self._layout = QtWidgets.QVBoxLayout(body)
        self._layout.setContentsMargins(4, 4, 4, 4)
        self.title = QtWidgets.QLabel()
        self.title.setWordWrap(True)
        self.route = QtWidgets.QLabel()
        self.route.setWordWrap(True)
        self.route.setToolTip("Choose another model in the Model box above to override")
        self.note = QtWidgets.QLabel()
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #b36b00;")
        self.bars = QtWidgets.QWidget()
        self._bars = QtWidgets.QFormLayout(self.bars)
        self.exam_table = QtWidgets.QTableWidget(0, 0)
        self.exam_table.setVisible(False)
        self.exam_table.verticalHeader().setDefaultSectionSize(20)
        self.exam_table.setVerticalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.exam_table.setToolTip("Per view; per breast the maximum of its views; per exam the maximum of both breasts")
        self.exam_table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.patch_title = QtWidgets.QLabel("Selected patch (what the local network read), magnified:")
        self.patch_title.setWordWrap(True)
        self.patch_view = QtWidgets.QLabel()
        self.patch_view.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.patch_view.setToolTip("The patch of the patch map, magnified; windowed like its view")
        for widget in (self.title, self.route, self.note, self.bars, self.exam_table, self.patch_title, self.patch_view):
            self._layout.addWidget(widget)
        self._layout.addStretch(1)
        self.show_result(None)

    def sizeHint(self) -> QtCore.QSize:
        body, width = self.widget(), self.viewport().width()
        wanted = body.sizeHint()
        height = body.heightForWidth(width) if body.hasHeightForWidth() and width > 0 else -1  # wrapped lines
        # at its real width: the plain hint wraps the lines narrower and asked for ~40 px more than it shows
        return QtCore.QSize(wanted.width(), (height if height > 0 else wanted.height()) + 2 * self.frameWidth())

    def minimumSizeHint(self) -> QtCore.QSize:
        return QtCore.QSize(super().minimumSizeHint().width(), 4 * self.fontMetrics().height())

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:
        if watched is self.widget() and event.type() == QtCore.QEvent.Type.LayoutRequest:
            self.updateGeometry()  # what it shows changed: ask the dock for the new height
        return super().eventFilter(watched, event)

    def show_patch(self, rgb: np.ndarray | None, side: int = 240) -> None:
        """The selected patch (RGB uint8), scaled up to `side` pixels; None hides it."""
        self.patch_title.setVisible(rgb is not None)
        self.patch_view.setVisible(rgb is not None)
        if rgb is None:
            self.patch_view.clear()
            return
        rgb = np.ascontiguousarray(rgb)
        image = QtGui.QImage(rgb.data, rgb.shape[1], rgb.shape[0], rgb.strides[0], QtGui.QImage.Format.Format_RGB888)
        pixmap = QtGui.QPixmap.fromImage(image.copy())
        self.patch_view.setPixmap(pixmap.scaled(side, side, QtCore.Qt.AspectRatioMode.KeepAspectRatio,
                                                QtCore.Qt.TransformationMode.FastTransformation))

    def show_result(self, result: InferenceResult | None, message: str = "") -> None:
        while self._bars.rowCount():
            self._bars.removeRow(0)
        if result is None or not result.patches:
            self.show_patch(None)
        if result is None:
            self.title.setText(message or "No result for this image yet.")
            self.route.setText("")
            self.note.setText("")
            return
        self.title.setText(f"<b>{result.model_key}</b> on {result.device}")
        self.route.setText(f"Why this model: {result.route}" if result.route else "")
        text = TASKS[result.task].panel(result)
        notes = [result.note] if result.note else []
        if result.out_of_distribution:
            notes.append(f"This image does not look like the images {result.model_key} was trained on "
                         f"(distance {result.ood_distance:.1f}, limit {result.ood_limit:.1f}): the result may not apply.")
        self.note.setText("\n".join([*notes, *text.notes]))
        if result.probabilities is not None:
            best = int(result.probabilities.argmax())
            for index, (name, p) in enumerate(zip(result.classes, result.probabilities)):
                bar = QtWidgets.QProgressBar()
                bar.setRange(0, 1000)
                bar.setValue(round(float(p) * 1000))
                bar.setFormat(f"{float(p):.3f}")
                label = QtWidgets.QLabel(f"<b>{name}</b>" if index == best else name)
                self._bars.addRow(label, bar)
            self._bars.addRow(_wrapped(text.caption))
        for label, fact in text.facts:
            self._bars.addRow(label, _wrapped(fact))

    def show_exam(self, scores: ExamScores | None, prior: ExamScores | None = None) -> None:
        """The exam's scores per view, breast and exam; a prior's per breast and exam below them."""
        table = self.exam_table
        table.setVisible(scores is not None)
        if scores is None:
            return
        rows = [*scores.views.items(), *((f"{side} breast", s) for side, s in scores.breasts.items()),
                ("Exam", scores.exam)]
        if prior is not None and prior.classes == scores.classes:
            rows += [*((f"Prior {side} breast", s) for side, s in prior.breasts.items()), ("Prior exam", prior.exam)]
        table.setRowCount(len(rows))
        table.setColumnCount(len(scores.classes))
        table.setHorizontalHeaderLabels(list(scores.classes))
        table.setVerticalHeaderLabels([label for label, _ in rows])
        for r, (_, values) in enumerate(rows):
            for c, value in enumerate(values):
                table.setItem(r, c, QtWidgets.QTableWidgetItem(f"{float(value):.3f}"))
        table.resizeColumnsToContents()
        table.resizeRowsToContents()
        header_height = table.horizontalHeader().sizeHint().height()
        table.setFixedHeight(header_height + sum(table.rowHeight(r) for r in range(len(rows))) + 4)


def _wrapped(text: str) -> QtWidgets.QLabel:
    """A label that wraps: one long line must not make the panel wider than the dock (it would be cut off)."""
    label = QtWidgets.QLabel(text)
    label.setWordWrap(True)
    return label
