"""The model packages in models/: they load strictly, run, and carry an honest card."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.inference.options import ExplainOptions
from app.inference.registry import ModelRegistry
from app.inference.runner import InferenceEngine
from app.io.study_loader import decode_image, read_info
from tests.test_inference import loaded

MODELS = Path(__file__).resolve().parents[1] / "models"
REGISTRY = ModelRegistry.discover([MODELS])
CARD_FIELDS = ("summary", "data", "split", "training", "metrics", "calibration", "cpu_latency_ms")


def test_every_package_in_models_is_readable():
    assert not REGISTRY.problems, REGISTRY.problems


CNN_MODELS = [m for m in REGISTRY.models if m.task != "glam"]
GLAM_MODELS = [m for m in REGISTRY.models if m.task == "glam"]


@pytest.mark.parametrize("model", CNN_MODELS, ids=lambda m: m.name)
def test_a_shipped_model_runs_and_has_a_card(model):
    assert model.weights_path.stat().st_size <= 25e6
    assert all(field in model.card for field in CARD_FIELDS), sorted(model.card)
    assert model.ood
    pixels = np.random.default_rng(0).integers(0, 255, (300, 260), np.uint8)
    result = InferenceEngine("cpu").run(model, loaded(pixels), options=ExplainOptions())
    if model.task == "segmentation":
        assert result.mask.shape == (300, 260) and "threshold" in model.settings
        return
    assert "temperature" in model.settings
    assert result.probabilities.shape == (len(model.classes),) and result.calibrated
    assert next(iter(result.heatmaps.values())).shape == (300, 260)


def test_the_ultrasound_model_says_a_mammogram_is_not_its_kind_of_image(shared_datasets):
    if not (MODELS / "us-breast-cls").is_dir():
        pytest.skip("us-breast-cls is not in models/")
    model = REGISTRY.get("us-breast-cls")
    engine = InferenceEngine("cpu")
    mammogram = engine.run(model, decode_image(read_info(shared_datasets / "mias" / "images" / "mdb001.png")),
                           options=ExplainOptions(layers=()))
    ultrasound = engine.run(model, decode_image(read_info(shared_datasets / "busi" / "benign" / "benign (1).png")),
                            options=ExplainOptions(layers=()))
    assert mammogram.out_of_distribution and not ultrasound.out_of_distribution


def test_the_ultrasound_classifier_carries_the_segmenters_mask_unless_it_calls_the_image_normal(shared_datasets):
    if not {"us-breast-cls", "us-breast-seg"} <= {m.name for m in REGISTRY.models}:
        pytest.skip("us-breast-cls or us-breast-seg is not in models/")
    classifier, segmenter, engine = REGISTRY.get("us-breast-cls"), REGISTRY.get("us-breast-seg"), InferenceEngine("cpu")
    lesion = decode_image(read_info(shared_datasets / "busi" / "malignant" / "malignant (3).png"))
    result = engine.run(classifier, lesion, options=ExplainOptions(layers=()))
    assert result.classes[int(np.argmax(result.probabilities))] == "malignant" and result.mask_source == segmenter.key
    np.testing.assert_array_equal(result.mask, engine.run(segmenter, lesion).mask)
    normal = engine.run(classifier, decode_image(read_info(shared_datasets / "busi" / "normal" / "normal (1).png")))
    assert normal.mask is None and "calls the image normal" in normal.mask_note


@pytest.mark.parametrize("model", GLAM_MODELS, ids=lambda m: m.name)
def test_a_shipped_glam_model_runs_on_a_mammogram_and_has_a_card(model):
    assert all(path.stat().st_size <= 16e6 for path in model.folder.iterdir())
    assert all(field in model.card for field in CARD_FIELDS + ("supervision", "targets_met")), sorted(model.card)
    figures = model.card["metrics"]
    for key in ("auroc_any_lesion", "auroc_malignant", "lesion_centre_in_patch", "pointing_game", "ece"):
        assert {"mean", "sd", "pooled", "pooled_95ci"} <= set(figures[key]), key
    assert model.ood and len(model.settings["temperature"]) == 2
    pixels = np.zeros((400, 300), np.uint8)
    pixels[10:390, :200] = 120
    pixels[200:230, 100:130] = 230
    result = InferenceEngine("cpu").run(model, loaded(pixels))
    assert result.probabilities.shape == (2,) and set(result.saliency) == {"benign", "malignant"}
    assert len(result.patches) == 1 and result.calibrated and result.ood_distance is not None


def test_the_default_model_for_mammograms_is_mg_glam_lite():
    from app.core.image import ImageInfo

    assert REGISTRY.default_for("MG").name == "mg-glam-lite"
    no_modality = ImageInfo(path=Path("/study/view.dcm"), source_format="dicom", modality="", laterality="L", view="CC")
    assert REGISTRY.default_for_image(no_modality).name == "mg-glam-lite"
    not_a_view = ImageInfo(path=Path("/study/photo.png"), source_format="png", modality="")
    assert REGISTRY.default_for_image(not_a_view) is None
