"""The AI in the window: layers on the right image, stale results dropped, cancel, errors, exports."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtGui, QtWidgets

from app.inference.runner import InferenceEngine
from tests.dicom_factory import write_dicom
from tests.model_factory import make_package

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def models(tmp_path, monkeypatch):
    root = tmp_path / "models"
    make_package(root, "toy-us-cls", modality="US", classes=("normal", "benign", "malignant"))
    make_package(root, "toy-us-seg", task="segmentation", modality="OT")
    monkeypatch.setenv("RADLENS_MODEL_PATH", str(root))
    return root


@pytest.fixture
def ai_window(models, main_window):
    return main_window


def ultrasound_study(folder: Path, count: int, modality: str = "US", uid: str = "") -> Path:
    rng = np.random.default_rng(count)
    uid = uid or "1.2.826.0.1.3680043.8.498.1" + str(abs(hash(folder)) % 10 ** 8)
    for index in range(count):
        write_dicom(folder / f"img{index}.dcm", rng.integers(0, 255, (80 + 10 * index, 120), np.uint8),
                    Modality=modality, StudyInstanceUID=uid, SeriesNumber=index + 1, InstanceNumber=1,
                    SeriesInstanceUID=f"{uid}.{index + 1}")
    return folder


def open_study(qtbot, window, folder: Path) -> None:
    window.open_paths([folder])
    qtbot.waitUntil(lambda: not window.session.reading and not window.loader.busy and window.session.is_fully_painted,
                    timeout=20000)


def run_ai_and_wait(qtbot, window) -> None:
    with qtbot.waitSignal(window.ai.run_finished, timeout=60000):
        window.actions["run_ai"].trigger()


def result_on_the_one_image(qtbot, window, study: Path):
    """Opens a one-image study, runs the AI, makes its viewport active; its result and its layers."""
    open_study(qtbot, window, study)
    run_ai_and_wait(qtbot, window)
    viewport = next(v for v in window.study_view.viewports if v.state is not None)
    window.study_view.activate(viewport)
    result = window.session.results[viewport.state.image.info.identity]
    return result, window.session.layers.for_image(result.image_identity)


def slow_engine(monkeypatch, seconds: float) -> list[str]:
    """Every run takes `seconds` longer; returns the identities it ran on."""
    calls, real_run = [], InferenceEngine.run

    def run(self, manifest, image, *args, **kwargs):
        calls.append(image.info.identity)
        time.sleep(seconds)
        return real_run(self, manifest, image, *args, **kwargs)

    monkeypatch.setattr(InferenceEngine, "run", run)
    return calls


def test_layers_land_on_their_own_image_and_the_panel_binds_both_ways(qtbot, ai_window, tmp_path):
    open_study(qtbot, ai_window, ultrasound_study(tmp_path / "us", 2))
    run_ai_and_wait(qtbot, ai_window)
    viewports = [v for v in ai_window.study_view.viewports if v.state is not None]
    assert len(viewports) == 2
    for viewport in viewports:
        assert viewport.overlays, "no layer drawn"
        assert all(layer.image_identity == viewport.state.image.info.identity for layer in viewport.overlays)
    ai_window.study_view.activate(viewports[1])
    controls = ai_window.ai.layer_panel.controls
    assert len(controls) == 1 and controls[0].layer.image_identity == viewports[1].state.image.info.identity
    layer, items = controls[0].layer, viewports[1].overlays[controls[0].layer]
    controls[0].opacity_slider.setValue(30)
    assert layer.opacity == pytest.approx(0.3) and items[0].opacity() == pytest.approx(0.3)
    layer.opacity = 0.8
    assert controls[0].opacity_slider.value() == 80
    controls[0].visible_box.setChecked(False)
    assert not items[0].isVisible()
    controls[0].visible_box.setChecked(True)
    ai_window.actions["hide_overlays"].trigger()
    assert not any(item.isVisible() for v in viewports for items in v.overlays.values() for item in items)
    assert "relative" in ai_window.ai.results_panel.note.text()


def test_a_late_result_never_lands_on_the_study_opened_meanwhile(qtbot, ai_window, tmp_path, monkeypatch):
    # the same study and series UIDs, a different image (re-acquired): only the identity tells them apart
    uid = "1.2.826.0.1.3680043.8.498.42"
    first, second = ultrasound_study(tmp_path / "a", 1, uid=uid), ultrasound_study(tmp_path / "b", 1, uid=uid)
    open_study(qtbot, ai_window, first)
    calls = slow_engine(monkeypatch, 1.5)
    ai_window.actions["run_ai"].trigger()
    qtbot.waitUntil(lambda: len(calls) == 1, timeout=5000)
    open_study(qtbot, ai_window, second)
    qtbot.waitUntil(lambda: not ai_window.ai.controller.busy, timeout=20000)
    qtbot.wait(200)
    assert not ai_window.session.results and not ai_window.session.layers.layers
    assert not any(v.overlays for v in ai_window.study_view.viewports)


def test_the_dock_drops_results_for_another_study_or_another_image(qtbot, ai_window, tmp_path):
    """The worker's cancellation aside: a result that still arrives is checked against what is shown."""
    uid = "1.2.826.0.1.3680043.8.498.43"
    open_study(qtbot, ai_window, ultrasound_study(tmp_path / "a", 1, uid=uid))
    run_ai_and_wait(qtbot, ai_window)
    old_key, (old_result,) = ai_window.session.shown.key, ai_window.session.results.values()
    open_study(qtbot, ai_window, ultrasound_study(tmp_path / "b", 1, uid=uid))
    (series_identity,) = ai_window.study_view.viewport_by_series
    controller = ai_window.ai.controller
    controller.result_ready.emit(old_key, series_identity, old_result)  # the old study's run
    controller.result_ready.emit(ai_window.session.shown.key, series_identity, old_result)  # another image
    assert not ai_window.session.results and not ai_window.session.layers.layers
    assert not any(v.overlays for v in ai_window.study_view.viewports)


def test_cancel_stops_before_the_next_image(qtbot, ai_window, tmp_path, monkeypatch):
    open_study(qtbot, ai_window, ultrasound_study(tmp_path / "us", 3))
    calls = slow_engine(monkeypatch, 0.8)
    ai_window.actions["run_ai"].trigger()
    qtbot.waitUntil(lambda: len(calls) == 1, timeout=5000)
    ai_window.ai.cancel()
    qtbot.waitUntil(lambda: not ai_window.ai.controller.busy, timeout=20000)
    qtbot.wait(300)
    assert len(calls) <= 2 and not ai_window.session.results
    assert not ai_window.ai.progress.isVisible()


def test_a_broken_model_is_a_message_in_the_window(qtbot, ai_window, tmp_path, models):
    weights = models / "toy-us-cls" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    open_study(qtbot, ai_window, ultrasound_study(tmp_path / "us", 1))
    run_ai_and_wait(qtbot, ai_window)
    text = ai_window.ai.results_panel.title.text()
    assert "could not run" in text and "sha256" in text
    assert ai_window.isVisible()


def test_exports_the_view_as_png_and_the_mask_as_dicom_seg(qtbot, ai_window, tmp_path):
    highdicom = pytest.importorskip("highdicom")
    study = ultrasound_study(tmp_path / "ot", 1, modality="OT")  # only the segmentation model claims OT
    result, (mask_layer,) = result_on_the_one_image(qtbot, ai_window, study)
    mask_layer.threshold = float(np.median(result.mask))  # what the reader sees is what is exported
    png = ai_window.export_view(tmp_path / "view.png")
    assert png is not None and not QtGui.QImage(str(png)).isNull()
    seg_path = ai_window.export_segmentation(tmp_path / "seg.dcm")
    assert seg_path is not None
    seg = highdicom.seg.segread(seg_path)
    pixels = np.asarray(seg.pixel_array).squeeze()
    expected = result.mask >= mask_layer.threshold
    assert pixels.shape == result.mask.shape and 0.3 < expected.mean() < 0.7
    assert np.array_equal(pixels > 0, expected)


@pytest.fixture
def masked_models(tmp_path, monkeypatch):
    """An ultrasound classifier whose results carry an OT segmenter's lesion mask (settings.lesion_mask)."""
    root = tmp_path / "masked-models"
    make_package(root, "toy-us-cls", modality="US", settings={"lesion_mask": {"model": "toy-us-seg", "not_when": []}})
    make_package(root, "toy-us-seg", task="segmentation", modality="OT")
    monkeypatch.setenv("RADLENS_MODEL_PATH", str(root))
    return root


def test_a_classifier_with_a_lesion_mask_shows_both_and_exports_the_mask_as_the_reader_set_it(
        qtbot, masked_models, main_window, tmp_path):
    highdicom = pytest.importorskip("highdicom")
    result, layers = result_on_the_one_image(qtbot, main_window, ultrasound_study(tmp_path / "us", 1))
    assert result.model_key == "toy-us-cls@0.0.1" and result.probabilities is not None
    assert [layer.kind for layer in layers] == ["heatmap", "mask"]
    layers[1].threshold = float(np.median(result.mask))
    texts = [w.text() for w in main_window.ai.results_panel.bars.findChildren(QtWidgets.QLabel)]
    area = float((result.mask >= layers[1].threshold).mean()) * 100
    assert f"{area:.1f}% of the image at p ≥ {layers[1].threshold:.2f} (toy-us-seg)" in texts, texts
    seg = highdicom.seg.segread(main_window.export_segmentation(tmp_path / "seg.dcm"))
    assert np.array_equal(np.asarray(seg.pixel_array).squeeze() > 0, result.mask >= layers[1].threshold)
    assert seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmName == "toy-us-seg"


def test_on_a_laptop_screen_every_layer_control_is_in_view_beside_the_result(qtbot, masked_models, main_window,
                                                                             tmp_path):
    """At 1366 x 768 the class bars, the Grad-CAM's controls with its colour bar and the mask's threshold
    all show without scrolling (the Layers list took 90 px for a one-line note, and the results panel
    asked for ~40 px more than it drew)."""
    main_window.resize(1366, 768)
    result_on_the_one_image(qtbot, main_window, ultrasound_study(tmp_path / "us", 1))
    qtbot.wait(100)
    results, layers = main_window.ai.results_panel, main_window.ai.layer_panel
    assert [c.layer.kind for c in layers.controls] == ["heatmap", "mask"]
    assert results.verticalScrollBar().maximum() == 0 and layers.verticalScrollBar().maximum() == 0
    bottom = layers.controls[-1].threshold_slider
    assert layers.viewport().rect().contains(bottom.mapTo(layers.viewport(), bottom.rect().bottomRight()))


def test_run_ai_screenshot_draws_the_default_models_layers(tmp_path):
    models = tmp_path / "models"
    make_package(models, "toy-mg", modality="MG", classes=("benign", "malignant"))
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "RADLENS_MODEL_PATH": str(models)}
    shots = {}
    for name, extra in (("plain", []), ("ai", ["--run-ai"])):
        shots[name] = tmp_path / f"{name}.png"
        done = subprocess.run([sys.executable, "-m", "app", "demo", *extra, "--screenshot", str(shots[name]),
                               "--size", "1000x700"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr

    def coloured_share(path: Path) -> float:
        image = QtGui.QImage(str(path)).convertToFormat(QtGui.QImage.Format.Format_RGB888)
        pixels = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
        rgb = pixels[:, : image.width() * 3].reshape(image.height(), image.width(), 3)[100:600, 250:700].astype(int)
        return float((np.ptp(rgb, axis=2) > 40).mean())

    assert coloured_share(shots["plain"]) < 0.02 < 0.3 < coloured_share(shots["ai"])


def test_the_panel_states_the_mask_at_the_threshold_the_reader_set(qtbot, ai_window, tmp_path):
    study = ultrasound_study(tmp_path / "ot", 1, modality="OT")  # only the segmentation model claims OT
    result, (mask_layer,) = result_on_the_one_image(qtbot, ai_window, study)
    assert result.threshold == 0.5
    mask_layer.threshold = 0.9
    area = float((result.mask >= mask_layer.threshold).mean()) * 100
    texts = [w.text() for w in ai_window.ai.results_panel.bars.findChildren(QtWidgets.QLabel)]
    assert f"{area:.1f}% of the image at p ≥ {mask_layer.threshold:.2f}" in texts, texts


def test_a_long_line_in_the_results_panel_wraps_instead_of_running_off_the_dock(qtbot):
    from app.inference.results import InferenceResult
    from app.ui.results_panel import ResultsPanel

    panel = ResultsPanel()
    qtbot.addWidget(panel)
    panel.resize(300, 400)
    panel.show()
    panel.show_result(InferenceResult("id", "cls@1", "classification", ("normal", "benign"), "cpu",
                                      probabilities=np.array([0.7, 0.3]), mask_note="a reason " * 30))
    assert panel.widget().minimumSizeHint().width() <= panel.viewport().width()
    qtbot.wait(50)
    assert panel.widget().width() <= panel.viewport().width()
    assert any("a reason" in w.text() for w in panel.bars.findChildren(QtWidgets.QLabel))
