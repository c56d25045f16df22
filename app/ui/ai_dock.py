"""The AI panel: choose a model and explanation, run it off the UI thread, show results and layers.

Results are drawn only on the viewport whose image they were computed for, and only while the
study they were started for is still open.
"""

from __future__ import annotations

import logging

import numpy as np
from PySide6 import QtCore, QtWidgets

from app.core.layers import MASK, LayerStack
from app.core.scores import exam_scores
from app.core.study import Study
from app.inference.registry import ModelRegistry
from app.inference.results import InferenceResult
from app.inference.options import DEVICE_CHOICES, METHODS, ExplainOptions
from app.ui.inference_controller import InferenceController
from app.ui.layer_panel import LayerPanel
from app.ui.results_panel import ResultsPanel
from app.ui.settings import AppSettings
from app.ui.study_view import StudyView
from app.ui.viewport_widget import ViewportWidget

log = logging.getLogger("radlens.ui")

PREDICTED = "predicted class"


class AiDock(QtWidgets.QDockWidget):
    run_finished = QtCore.Signal()

    def __init__(self, study_view: StudyView, settings: AppSettings, registry: ModelRegistry | None = None,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("AI", parent)
        self.setObjectName("aiDock")
        self.study_view, self.settings = study_view, settings
        self.registry = registry or ModelRegistry.discover()
        self.stack = LayerStack()
        self.results: dict[str, InferenceResult] = {}  # by image identity
        self.study: Study | None = None
        self.run_when_decoded = False  # one-shot, e.g. `radlens open --run-ai`; not a saved setting
        self.controller = InferenceController(settings.ai_device(), self)
        self._build()
        self.stack.added.connect(self._on_layer_added)
        self.stack.removed.connect(self._on_layer_removed)
        self.stack.hidden_changed.connect(self._on_hidden_changed)
        self.controller.result_ready.connect(self._on_result)
        self.controller.failed.connect(self._on_failed)
        self.controller.progress.connect(self._on_progress)
        self.controller.finished.connect(self._on_finished)
        study_view.active_changed.connect(self._on_active_viewport)

    # ---- widgets -------------------------------------------------------------------------------
    def _build(self) -> None:
        body = QtWidgets.QWidget()
        form = QtWidgets.QFormLayout(body)
        form.setContentsMargins(4, 4, 4, 4)
        self.model_box = QtWidgets.QComboBox()
        self._fill_model_box()
        self.model_box.setToolTip("Used for images whose modality no model claims (e.g. PNG files)")
        self.card_button = QtWidgets.QToolButton()
        self.card_button.setText("Card…")
        self.card_button.setToolTip("The model card: data, split, metrics, calibration, licences")
        self.card_button.clicked.connect(self.show_model_card)
        model_row = QtWidgets.QHBoxLayout()
        model_row.addWidget(self.model_box, 1)
        model_row.addWidget(self.card_button)
        form.addRow("Model", model_row)
        self.method_box = QtWidgets.QComboBox()
        for key, name in METHODS.items():
            self.method_box.addItem(name, key)
        form.addRow("Explain by", self.method_box)
        self.layer_list = QtWidgets.QListWidget()
        self.layer_list.setMaximumHeight(90)
        self.layer_list.setToolTip("Network layers to explain; all come from one forward and one backward pass")
        form.addRow("Layers", self.layer_list)
        self.target_box = QtWidgets.QComboBox()
        form.addRow("For class", self.target_box)
        self.model_box.currentIndexChanged.connect(self._on_model_chosen)
        self._on_model_chosen()
        self.run_button = QtWidgets.QPushButton("Run AI  (Ctrl+R)")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.auto_run = QtWidgets.QCheckBox("Run when a study opens")
        self.auto_run.setChecked(self.settings.ai_auto_run())
        self.auto_run.toggled.connect(self.settings.set_ai_auto_run)
        self.device_box = QtWidgets.QComboBox()
        self.device_box.addItems(list(DEVICE_CHOICES))
        self.device_box.setCurrentText(self.settings.ai_device())
        self.device_box.currentTextChanged.connect(self._on_device_chosen)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.run_button, 1)
        buttons.addWidget(self.cancel_button)
        form.addRow(buttons)
        form.addRow(self.auto_run)
        form.addRow("Device", self.device_box)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setVisible(False)
        form.addRow(self.progress)
        self.results_panel = ResultsPanel()
        form.addRow(self.results_panel)
        self.layer_panel = LayerPanel()
        form.addRow(self.layer_panel)
        self.setWidget(body)

    def _fill_model_box(self) -> None:
        self.model_box.clear()
        for model in self.registry.models:
            self.model_box.addItem(f"{model.name} {model.version} ({'/'.join(model.modalities)}, {model.task})",
                                   model.name)
        if not self.registry.models:
            self.model_box.addItem("no models installed", None)

    def reload_models(self, select: str | None = None) -> None:
        """Read the model folders again (after an import) and choose `select` if it is there."""
        self.registry = ModelRegistry.discover()
        self._fill_model_box()
        index = self.model_box.findData(select) if select else -1
        if index >= 0:
            self.model_box.setCurrentIndex(index)

    def _on_model_chosen(self) -> None:
        model = self._chosen_model()
        self.layer_list.clear()
        self.target_box.clear()
        self.target_box.addItem(PREDICTED, None)
        if model is None:
            return
        for label in model.explain_layers:
            item = QtWidgets.QListWidgetItem(label)
            item.setFlags(item.flags() | QtCore.Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(QtCore.Qt.CheckState.Checked if label == model.default_explain_layer
                               else QtCore.Qt.CheckState.Unchecked)
            self.layer_list.addItem(item)
        for index, name in enumerate(model.classes):
            self.target_box.addItem(name, index)

    def show_model_card(self) -> None:
        from app.ui.model_card_dialog import ModelCardDialog

        model = self._chosen_model()
        if model is not None:
            ModelCardDialog(model, self).exec()

    def _on_device_chosen(self, device: str) -> None:
        self.settings.set_ai_device(device)
        self.controller.set_device(device)

    def _chosen_model(self):
        name = self.model_box.currentData()
        return self.registry.get(name) if name else None

    def options(self) -> ExplainOptions:
        layers = tuple(self.layer_list.item(i).text() for i in range(self.layer_list.count())
                       if self.layer_list.item(i).checkState() == QtCore.Qt.CheckState.Checked)
        return ExplainOptions(layers=layers, method=self.method_box.currentData(),
                              target_class=self.target_box.currentData())

    # ---- running -------------------------------------------------------------------------------
    def set_study(self, study: Study | None) -> None:
        """A new study is shown: stop what ran for the old one and forget its layers."""
        self.controller.cancel()
        self.cancel_button.setEnabled(False)
        self.study = study
        self.stack.clear()
        self.results.clear()
        self.progress.setVisible(False)
        self.results_panel.show_result(None)
        self.results_panel.show_exam(None)
        self.layer_panel.show_layers([])

    def study_decoded(self) -> None:
        if self.auto_run.isChecked() or self.run_when_decoded:
            self.run_when_decoded = False
            self.run()

    def run(self) -> None:
        if self.study is None:
            return
        chosen = self._chosen_model()
        jobs, skipped = [], []
        for viewport in self.study_view.viewports:
            state = viewport.state
            if state is None:
                continue
            modality = state.image.info.modality
            model = self.registry.default_for_image(state.image.info)
            if model is None and chosen is not None and (not modality or chosen.matches(modality)):
                model = chosen
            if model is None:
                skipped.append(viewport.label)
                continue
            series_identity = next(s for s, v in self.study_view.viewport_by_series.items() if v is viewport)
            jobs.append((series_identity, state.image, state.frame, model))
        if not jobs:
            self.results_panel.show_result(None, "No installed model fits these images"
                                           + (f" ({', '.join(skipped)})." if skipped else "."))
            self.run_finished.emit()
            return
        self.results_panel.show_result(None, f"Running {jobs[0][3].name} on {len(jobs)} image(s)…")
        self.controller.run(self.study.key, jobs, self.options())

    def cancel(self) -> None:
        """Stop the run after the image in progress; nothing it still computes is shown."""
        if not self.controller.busy:
            return
        self.controller.cancel()
        self.progress.setVisible(False)
        self.cancel_button.setEnabled(False)
        self.results_panel.show_result(None, "Cancelled.")

    def _on_progress(self, done: int, total: int) -> None:
        self.cancel_button.setEnabled(done < total)
        self.progress.setVisible(done < total)
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    def _on_result(self, study_key: str, series_identity: str, result: InferenceResult) -> None:
        viewport = self.study_view.viewport_by_series.get(series_identity)
        if self.study is None or study_key != self.study.key or viewport is None or viewport.state is None:
            return
        if viewport.state.image.info.identity != result.image_identity:
            return  # computed for another image than the one shown here
        self.results[result.image_identity] = result
        self.stack.replace(result.image_identity, result.model_key, result.layers())
        active = self.study_view.active
        if active is viewport or active is None:  # other images' panels refresh when they become active
            self._on_active_viewport(active)

    def _on_failed(self, study_key: str, _series: str, message: str) -> None:
        if self.study is not None and study_key == self.study.key:
            log.warning("The model could not run: %s", message)
            self.results_panel.show_result(None, f"The model could not run: {message}")

    def _on_finished(self, study_key: str) -> None:
        self.progress.setVisible(False)
        self.cancel_button.setEnabled(False)
        if self.study is not None and study_key == self.study.key:
            self._show_exam_scores()
            self.run_finished.emit()

    def _show_exam_scores(self) -> None:
        per_view, classes = {}, ()
        for viewport in self.study_view.viewports:
            result = self.results.get(viewport.state.image.info.identity) if viewport.state else None
            if result is not None and result.probabilities is not None and viewport.state.image.info.is_mammogram_view:
                per_view[viewport.state.image.info.label] = np.asarray(result.probabilities)
                classes = result.classes
        self.results_panel.show_exam(exam_scores(classes, per_view) if per_view else None)

    def mask_threshold(self, result: InferenceResult) -> float:
        """The threshold the reader set on the result's mask layer (the model's default otherwise)."""
        for layer in self.stack.for_image(result.image_identity):
            if layer.kind == MASK and layer.source == result.model_key:
                return layer.threshold
        return result.threshold

    # ---- layers onto viewports -----------------------------------------------------------------
    def _viewport_for(self, image_identity: str) -> ViewportWidget | None:
        return next((v for v in self.study_view.viewports
                     if v.state is not None and v.state.image.info.identity == image_identity), None)

    def _on_layer_added(self, layer) -> None:
        viewport = self._viewport_for(layer.image_identity)
        if viewport is not None:
            viewport.add_layer(layer, hidden=self.stack.all_hidden)

    def _on_layer_removed(self, layer) -> None:
        viewport = self._viewport_for(layer.image_identity)
        if viewport is not None and layer in viewport.overlays:
            viewport.remove_layer(layer)

    def _on_hidden_changed(self, hidden: bool) -> None:
        for viewport in self.study_view.viewports:
            viewport.set_overlays_hidden(hidden)

    def _on_active_viewport(self, viewport: ViewportWidget | None) -> None:
        state = viewport.state if viewport is not None else None
        if state is None:
            self.layer_panel.show_layers([])
            return
        identity = state.image.info.identity
        self.layer_panel.show_layers(self.stack.for_image(identity))
        result = self.results.get(identity)
        self.results_panel.show_result(result)
        if result is not None and result.patches:
            from app.inference.visualize import patch_rgb

            self.results_panel.show_patch(patch_rgb(state.image, result.patches[0], state.frame, state))
