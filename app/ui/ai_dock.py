"""The AI panel: choose a model and explanation, run it on the session's study off the UI thread, show
the active image's result and layers. The session keeps the results and decides where they belong."""

from __future__ import annotations

import logging
from PySide6 import QtCore, QtWidgets

from app.core.layers import MASK
from app.core.study import Study
from app.inference.registry import ModelRegistry
from app.inference.results import InferenceResult
from app.inference.cam_methods import EXPLANATION_METHODS
from app.inference.options import DEVICE_CHOICES, ExplainOptions
from app.ui.inference_controller import InferenceController
from app.ui.layer_panel import LayerPanel
from app.ui.results_panel import ResultsPanel
from app.session import ReadingSession
from app.ui.settings import AppSettings

log = logging.getLogger("radlens.ui")

PREDICTED = "predicted class"
AUTOMATIC = "Automatic (by modality, else by resemblance)"


class AiDock(QtWidgets.QDockWidget):
    run_finished = QtCore.Signal()

    def __init__(self, session: ReadingSession, settings: AppSettings, registry: ModelRegistry | None = None,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("AI", parent)
        self.setObjectName("aiDock")
        self.session, self.settings = session, settings
        self.registry = registry or ModelRegistry.discover()
        self.run_when_decoded = False  # one-shot, e.g. `radlens open --run-ai`; not a saved setting
        self.controller = InferenceController(settings.ai_device(), self)
        self._build()
        self.controller.result_ready.connect(self._on_result)
        self.controller.failed.connect(self._on_failed)
        self.controller.progress.connect(self._on_progress)
        self.controller.finished.connect(self._on_finished)
        session.shown_changed.connect(self._on_shown)
        session.active_changed.connect(self._show_active)
        session.result_added.connect(self._on_result_added)
        session.layers.added.connect(self._on_layer_added)

    # ---- widgets -------------------------------------------------------------------------------
    def _build(self) -> None:
        body = QtWidgets.QWidget()
        form = QtWidgets.QFormLayout(body)
        form.setContentsMargins(4, 4, 4, 4)
        self.model_box = QtWidgets.QComboBox()
        self._fill_model_box()
        self.model_box.setToolTip("Automatic: a DICOM modality picks its model; an image without one (PNG, JPEG) "
                                  "goes to the model whose training images it resembles. A model chosen here "
                                  "reads every image it fits (no modality, or one it claims).")
        self.card_button = QtWidgets.QToolButton()
        self.card_button.setText("Card…")
        self.card_button.setToolTip("The model card: data, split, metrics, calibration, licences")
        self.card_button.clicked.connect(self.show_model_card)
        model_row = QtWidgets.QHBoxLayout()
        model_row.addWidget(self.model_box, 1)
        model_row.addWidget(self.card_button)
        form.addRow("Model", model_row)
        self.method_box = QtWidgets.QComboBox()
        for key, method in EXPLANATION_METHODS.items():
            self.method_box.addItem(method.name, key)
        form.addRow("Explain by", self.method_box)
        self.layer_list = QtWidgets.QListWidget()
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
        self.send_button = QtWidgets.QPushButton("Send results to PACS")  # the window connects it
        self.send_button.setToolTip("Findings SR, DICOM SEG of masks and a capture of the active view, "
                                    "to the PACS set in File > PACS… (DICOM images only)")
        self.send_status = QtWidgets.QLabel()
        self.send_status.setWordWrap(True)
        self.send_status.setVisible(False)
        form.addRow(self.send_button)
        form.addRow(self.send_status)
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
        if self.registry.models:
            self.model_box.addItem(AUTOMATIC, "")
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
        explains = model is None or bool(model.explain_layers)
        self.method_box.setEnabled(explains)
        self.layer_list.setEnabled(model is not None and explains)
        self.target_box.setEnabled(model is not None and explains)
        if model is None or not explains:  # say why the list is empty rather than show an empty box
            self.layer_list.addItem("each image's model explains its own default layer" if model is None
                                    else f"{model.name} draws its own maps (no layer to choose)")
        else:
            for label in model.explain_layers:
                item = QtWidgets.QListWidgetItem(label)
                item.setFlags(item.flags() | QtCore.Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(QtCore.Qt.CheckState.Checked if label == model.default_explain_layer
                                   else QtCore.Qt.CheckState.Unchecked)
                self.layer_list.addItem(item)
            for index, name in enumerate(model.classes):
                self.target_box.addItem(name, index)
        self._fit_layer_list()

    def _fit_layer_list(self, most_rows: int = 4) -> None:
        """As tall as its rows (up to `most_rows`, then it scrolls): a one-line note must not take the height
        the layer controls below need on a laptop screen."""
        rows = min(max(self.layer_list.count(), 1), most_rows)
        self.layer_list.setFixedHeight(rows * self.layer_list.sizeHintForRow(0) + 2 * self.layer_list.frameWidth())

    def show_model_card(self) -> None:
        from app.ui.model_card_dialog import ModelCardDialog

        model = self._chosen_model() or self._active_result_model()
        if model is not None:
            ModelCardDialog(model, self).exec()

    def _active_result_model(self):
        """The model of the result on the active image (what Automatic chose there), if any."""
        result = self.session.result_for(self.session.active)
        return next((m for m in self.registry.models if result and m.key == result.model_key), None)

    def _on_device_chosen(self, device: str) -> None:
        self.settings.set_ai_device(device)
        self.controller.set_device(device)

    def _chosen_model(self):
        name = self.model_box.currentData()
        return self.registry.get(name) if name else None

    def options(self) -> ExplainOptions:
        if self._chosen_model() is None:  # each image's own model: its default layer, its predicted class
            return ExplainOptions(method=self.method_box.currentData())
        layers = tuple(self.layer_list.item(i).text() for i in range(self.layer_list.count())
                       if self.layer_list.item(i).checkState() == QtCore.Qt.CheckState.Checked)
        return ExplainOptions(layers=layers, method=self.method_box.currentData(),
                              target_class=self.target_box.currentData())

    def show_send_status(self, summary: str, ok: bool) -> None:
        self.send_status.setText(summary)
        self.send_status.setStyleSheet("" if ok else "color: #d9534f;")
        self.send_status.setVisible(True)

    # ---- running -------------------------------------------------------------------------------
    def _on_shown(self, _study: Study | None) -> None:
        """Another study is on screen: what ran for the old one was stopped by the session; clear the panel."""
        self.controller.cancel()
        self.cancel_button.setEnabled(False)
        self.progress.setVisible(False)
        self.results_panel.show_result(None)
        self.results_panel.show_exam(None)
        self.layer_panel.show_layers([])
        self.send_status.setVisible(False)

    def study_decoded(self) -> None:
        if self.auto_run.isChecked() or self.run_when_decoded:
            self.run_when_decoded = False
            self.run()

    def run(self) -> None:
        """Read every decoded image of the session's study with its model."""
        study = self.session.shown
        if study is None:
            return
        jobs = self.session.inference_jobs()
        if not jobs or not self.registry.models:
            self.results_panel.show_result(None, "No installed model fits these images." if jobs
                                           else "No image is shown.")
            self.run_finished.emit()
            return
        chosen = self._chosen_model()
        self.results_panel.show_result(None, f"Running {chosen.name if chosen else 'AI'} on {len(jobs)} image(s)…")
        self.session.set_run(jobs)
        self.controller.run(study.key, jobs, self.registry, chosen, self.options())

    def cancel(self) -> None:
        """Stop the run after the image in progress; nothing it still computes is shown."""
        if not self.controller.busy:
            return
        self.controller.cancel()
        self.session.set_run(())
        self.progress.setVisible(False)
        self.cancel_button.setEnabled(False)
        self.results_panel.show_result(None, "Cancelled.")

    def _on_progress(self, done: int, total: int) -> None:
        self.cancel_button.setEnabled(done < total)
        self.progress.setVisible(done < total)
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    def _on_result(self, study_key: str, series_identity: str, result: InferenceResult) -> None:
        self.session.add_result(study_key, series_identity, result)

    def _on_result_added(self, result: InferenceResult) -> None:
        if self.session.image_identity(self.session.active) == result.image_identity:
            self._show_active(self.session.active)  # other images' panels refresh when they become active

    def _on_failed(self, study_key: str, _series: str, message: str) -> None:
        if self.session.shown is not None and study_key == self.session.shown.key:
            log.warning("The model could not run: %s", message)
            self.results_panel.show_result(None, f"The model could not run: {message}")

    def _on_finished(self, study_key: str) -> None:
        self.progress.setVisible(False)
        self.cancel_button.setEnabled(False)
        if self.session.shown is not None and study_key == self.session.shown.key:
            self.session.set_run(())
            prior = self.session.on_screen[1] if len(self.session.on_screen) > 1 else None
            self.results_panel.show_exam(self.session.exam_scores(),
                                         self.session.exam_scores(prior) if prior is not None else None)
            self.run_finished.emit()

    # ---- the active image's result and layers --------------------------------------------------
    def _on_layer_added(self, layer) -> None:
        """The panel's "Segmented" line follows the threshold the reader sets on the mask."""
        if layer.kind == MASK:
            layer.changed.connect(lambda *_: self._on_mask_changed(layer))

    def _on_mask_changed(self, layer) -> None:
        if self.session.image_identity(self.session.active) == layer.image_identity:
            self.results_panel.show_result(self.session.result_for(self.session.active))

    def _show_active(self, series_identity: str | None) -> None:
        identity = self.session.image_identity(series_identity) if series_identity else None
        if identity is None:
            self.layer_panel.show_layers([])
            return
        self.layer_panel.show_layers(self.session.layers.for_image(identity))
        self.results_panel.show_result(self.session.result_for(series_identity))
        picture = self.session.patch_picture(series_identity)
        if picture is not None:
            self.results_panel.show_patch(picture)
