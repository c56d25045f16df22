"""GLAM in the product: the four-view study in the window, predict's GLAM csv, importing checkpoints."""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.cli import main as radlens
from tests.model_factory import make_glam_package
from tests.test_ai_ui import open_study, run_ai_and_wait
from tests.test_glam import _official_like_checkpoint

VIEWS = ("L-CC", "R-CC", "L-MLO", "R-MLO")


def write_exam(folder: Path, exam: int = 0) -> Path:
    """Four 16-bit PNG views named as GLAM names them, breasts against the chest wall of their side."""
    folder.mkdir(parents=True, exist_ok=True)
    for view in VIEWS:
        pixels = np.zeros((320, 200), np.uint16)
        pixels[10:300, :140] = 900
        pixels[140:160, 60:80] = 4000
        cv2.imwrite(str(folder / f"{exam}_{view}.png"), pixels[:, ::-1] if view.startswith("R") else pixels)
    return folder


@pytest.fixture
def glam_models(tmp_path, monkeypatch):
    root = tmp_path / "models"
    make_glam_package(root, "toy-glam", modality=["MG", "OT"])
    monkeypatch.setenv("RADLENS_MODEL_PATH", str(root))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "user-data"))
    return root


def test_a_four_view_exam_gets_saliency_and_patch_layers_scores_and_a_magnified_patch(
        qtbot, glam_models, main_window, tmp_path):
    window = main_window
    open_study(qtbot, window, write_exam(tmp_path / "exam"))
    window.ai.model_box.setCurrentIndex(window.ai.model_box.findData("toy-glam"))
    run_ai_and_wait(qtbot, window)
    for viewport in window.study_view.viewports:
        names = sorted(layer.name for layer in viewport.overlays)
        assert names == ["Benign saliency", "Malignant saliency", "Patch map"], viewport.label
    panel = window.ai.results_panel
    assert panel.exam_table.isVisible() and panel.exam_table.rowCount() == 4 + 2 + 1
    window.study_view.activate(window.study_view.viewports[0])
    assert panel.patch_view.isVisible() and not panel.patch_view.pixmap().isNull()
    opacity = next(c for c in window.ai.layer_panel.controls if c.layer.name == "Malignant saliency").opacity_slider
    opacity.setValue(20)
    layer = next(l for l in window.session.layers.layers if l.name == "Malignant saliency"
                 and l.image_identity == window.study_view.viewports[0].state.image.info.identity)
    assert layer.opacity == pytest.approx(0.2)
    # what the panel shows asks for its height, and scrolls in a window as short as a laptop's screen
    assert panel.sizeHint().height() >= panel.exam_table.height() + panel.patch_view.sizeHint().height()
    assert window.minimumSizeHint().height() <= 700, window.minimumSizeHint()


def test_predict_writes_glams_csv_with_labels_from_the_exam_list(glam_models, tmp_path):
    source = write_exam(tmp_path / "in")
    exams = [{"horizontal_flip": "NO", **{v: [f"0_{v}"] for v in VIEWS},
              "cancer_label": {"left_benign": 0, "left_malignant": 1, "right_benign": 1, "right_malignant": 0}}]
    (tmp_path / "exams.pkl").write_bytes(pickle.dumps(exams))
    assert radlens(["predict", str(source), str(tmp_path / "out"), "--model", "toy-glam",
                    "--exam-list", str(tmp_path / "exams.pkl")]) == 0
    with open(tmp_path / "out" / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["image_index", "benign_pred", "malignant_pred", "benign_label", "malignant_label",
                             "patch_x", "patch_y", "patch_w", "patch_h"]
    for row in rows:  # the patch lies inside its image (the views are 320 x 200 here)
        x, y, w, h = (float(row[k]) for k in ("patch_x", "patch_y", "patch_w", "patch_h"))
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 200 + 1 and y + h <= 320 + 1, row
    labels = {row["image_index"]: (row["benign_label"], row["malignant_label"]) for row in rows}
    assert labels == {"0_L-CC": ("0", "1"), "0_L-MLO": ("0", "1"), "0_R-CC": ("1", "0"), "0_R-MLO": ("1", "0")}
    assert all(0 <= float(row["malignant_pred"]) <= 1 for row in rows)
    picture = cv2.imread(str(tmp_path / "out" / "visualizations" / "0_L-CC.png"))
    assert picture.shape[1] > 4 * picture.shape[0] // 2  # image, patch map, two saliency maps, the patch


def test_an_exam_list_that_names_code_is_refused(glam_models, tmp_path, capsys):
    class Sneaky:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "ran",))

    (tmp_path / "exams.pkl").write_bytes(pickle.dumps([Sneaky()]))
    assert radlens(["predict", str(write_exam(tmp_path / "in")), str(tmp_path / "out"), "--model", "toy-glam",
                    "--exam-list", str(tmp_path / "exams.pkl")]) == 2
    assert "only lists and dicts" in capsys.readouterr().err
    assert not (tmp_path / "ran").exists()


def test_models_import_installs_a_checkpoint_for_the_user_and_lists_it(glam_models, tmp_path, capsys):
    checkpoint = _official_like_checkpoint(tmp_path / "model_joint.ckpt")
    assert radlens(["models", "import", str(checkpoint)]) == 0
    assert (tmp_path / "user-data" / "RadLens" / "models" / "glam-official" / "model.json").is_file()
    assert radlens(["models"]) == 0
    assert "glam-official" in capsys.readouterr().out
    (tmp_path / "broken.ckpt").write_bytes(b"not a checkpoint")
    assert radlens(["models", "import", str(tmp_path / "broken.ckpt")]) == 1
    assert "cannot import" in capsys.readouterr().err


def test_file_import_model_adds_it_to_the_ai_panel_or_says_why_not(glam_models, main_window, tmp_path, monkeypatch):
    from PySide6 import QtWidgets

    warnings = []
    monkeypatch.setattr(QtWidgets.QMessageBox, "warning", lambda *args: warnings.append(args[2]))
    checkpoint = _official_like_checkpoint(tmp_path / "model_joint.ckpt")
    assert main_window.import_model(checkpoint)
    assert main_window.ai.model_box.currentData() == "glam-official"
    (tmp_path / "other.pt").write_bytes(b"\x00")
    assert not main_window.import_model(tmp_path / "other.pt")
    assert warnings and "was not imported" in warnings[0]


def test_the_panel_calls_glam_scores_calibrated_only_when_they_are(qtbot):
    from app.inference.results import InferenceResult
    from app.ui.results_panel import ResultsPanel

    panel = ResultsPanel()
    qtbot.addWidget(panel)
    saliency = {"benign": np.zeros((4, 4), np.float32), "malignant": np.zeros((4, 4), np.float32)}
    for calibrated in (True, False):
        panel.show_result(InferenceResult("id", "glam@1", "glam", ("benign", "malignant"), "cpu",
                                          probabilities=np.array([0.2, 0.1]), saliency=saliency,
                                          calibrated=calibrated))
        assert ("not calibrated" in panel.note.text()) is not calibrated
