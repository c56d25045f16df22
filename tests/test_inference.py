"""Model packages, networks, explanations and the inference engine, without Qt (random weights)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from app.core.image import ImageInfo, LoadedImage
from app.inference import runner as runner_module
from app.inference.cam_methods import GradCam, GradCamPlusPlus
from app.inference.explain import CamExplainer
from app.inference.manifest import ModelPackageError, read_manifest
from app.inference.networks import build_network, imagenet_weights_path, load_imagenet_encoder
from app.inference.options import ExplainOptions
from app.inference.registry import ModelRegistry
from app.inference.runner import InferenceEngine
from app.inference.weights import load_strict, read_state_dict
from app.inference.tasks import TASKS
from tests.model_factory import make_package

REPO = Path(__file__).resolve().parents[1]


def loaded(pixels: np.ndarray, identity: str = "image-1", modality: str = "US") -> LoadedImage:
    info = ImageInfo(path=Path("/nowhere/image.png"), source_format="png", modality=modality, sop_uid=identity,
                     rows=pixels.shape[0], columns=pixels.shape[1])
    return LoadedImage(info=info, frames=pixels[None])


# ---- networks and pretrained weights -------------------------------------------------------------
@pytest.mark.parametrize("variant, size", [("lite0", 224), ("lite1", 240), ("lite2", 260)])
def test_imagenet_weights_load_strictly_and_see_a_cat(variant, size):
    skimage_data = pytest.importorskip("skimage.data")
    network = build_network({"type": "efficientnet-lite", "variant": variant, "num_classes": 1000})
    load_strict(network, read_state_dict(imagenet_weights_path(variant)), imagenet_weights_path(variant))
    photo = cv2.resize(skimage_data.chelsea().astype(np.float32) / 255, (size, size), interpolation=cv2.INTER_AREA)
    tensor = torch.from_numpy(((photo - 0.5) / 0.5).transpose(2, 0, 1).copy())[None]
    with torch.inference_mode():
        top = int(network.eval()(tensor).argmax())
    assert 281 <= top <= 285, f"ImageNet class {top} is not a domestic cat"


def test_segmentation_network_starts_from_imagenet_and_keeps_the_input_size():
    network = build_network({"type": "efficientnet-lite-unet"})
    load_imagenet_encoder(network.encoder)
    reference = read_state_dict(imagenet_weights_path())
    assert torch.equal(network.encoder._blocks[3]._depthwise_conv.weight, reference["_blocks.3._depthwise_conv.weight"])
    with torch.inference_mode():
        assert network.eval()(torch.zeros(1, 3, 96, 128)).shape == (1, 1, 96, 128)


def test_unknown_network_type_is_a_clear_error():
    with pytest.raises(ValueError, match="network type"):
        build_network({"type": "resnet"})


# ---- explanations --------------------------------------------------------------------------------
def small_classifier(classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return build_network({"type": "efficientnet-lite", "num_classes": classes}).eval()


@pytest.mark.parametrize("ours, theirs", [(GradCam, "GradCAM"), (GradCamPlusPlus, "GradCAMPlusPlus")])
def test_cams_equal_the_pytorch_grad_cam_package_layer_by_layer(ours, theirs):
    grad_cam = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    network, layers = small_classifier(), ["_blocks.10", "_blocks.15", "_head_activation"]
    image = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    with CamExplainer(network, layers, ours()) as explainer:
        explained = explainer(image, target_class=2)
    modules = dict(network.named_modules())
    for name in layers:
        with getattr(grad_cam, theirs)(model=network, target_layers=[modules[name]]) as reference:
            expected = reference(input_tensor=image, targets=[ClassifierOutputTarget(2)])[0]
        mine = cv2.resize(explained.maps[name], (96, 96))
        mine = (mine - mine.min()) / max(mine.max() - mine.min(), 1e-12)
        # the package divides by (max + 1e-7): with random weights' tiny maps that alone moves values ~0.5%
        assert np.abs(mine - expected).max() < 0.01, name
        assert np.corrcoef(mine.ravel(), expected.ravel())[0, 1] > 0.9999, name


def test_all_layers_come_from_one_forward_and_one_backward_and_hooks_are_released(monkeypatch):
    network = small_classifier()
    forwards, grads = [], []
    network.register_forward_pre_hook(lambda *_: forwards.append(1))
    real_grad = torch.autograd.grad
    monkeypatch.setattr(torch.autograd, "grad", lambda *a, **k: grads.append(1) or real_grad(*a, **k))
    layers = list(network.explainable_layers().values())
    with CamExplainer(network, layers) as explainer:
        explained = explainer(torch.randn(1, 3, 64, 64))
    assert len(forwards) == 1 and len(grads) == 1
    assert set(explained.maps) == set(layers)
    assert explained.maps["_blocks.4"].shape == (8, 8) and explained.maps["_head_activation"].shape == (2, 2)
    assert all(not module._forward_hooks for module in network.modules() if module is not network)
    assert not any(p.grad is not None for p in network.parameters()), "parameter gradients were computed"


class BrightSpotNet(nn.Module):
    """Scores class 1 by mean brightness: its CAM is the image itself, so it must peak on the bright spot."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(3, 1, 1, bias=False)
        nn.init.constant_(self.features.weight, 1 / 3)

    def forward(self, x):
        score = torch.relu(self.features(x + 1)).mean(dim=(2, 3))
        return torch.cat([-score, score], dim=1)


@pytest.mark.parametrize("shape", [(200, 100), (90, 240)])
def test_heatmaps_are_aligned_with_the_image_through_the_letterbox(tmp_path, shape):
    manifest = make_package(tmp_path, classes=("dark", "bright"))
    manifest = replace(manifest, explain_layers={"spot": "features"}, default_explain_layer="spot")
    pixels = np.zeros(shape, np.uint8)
    spot = (int(shape[0] * 0.75), int(shape[1] * 0.2))
    cv2.circle(pixels, spot[::-1], 6, 255, -1)
    engine = InferenceEngine("cpu")
    engine.network = lambda *_: BrightSpotNet()
    result = engine.run(manifest, loaded(pixels), options=ExplainOptions(target_class=1))
    heatmap = result.heatmaps["spot"]
    assert heatmap.shape == shape
    peak = np.unravel_index(np.argmax(heatmap), shape)
    assert abs(peak[0] - spot[0]) <= 4 and abs(peak[1] - spot[1]) <= 4, (peak, spot)


# ---- model packages and weights ------------------------------------------------------------------
def test_a_damaged_weights_file_is_refused_by_its_hash(tmp_path):
    manifest = make_package(tmp_path)
    data = bytearray(manifest.weights_path.read_bytes())
    data[-5] ^= 0xFF
    manifest.weights_path.write_bytes(bytes(data))
    with pytest.raises(ModelPackageError, match="sha256"):
        InferenceEngine("cpu").run(manifest, loaded(np.zeros((64, 64), np.uint8)))


def test_a_missing_key_is_an_error_never_a_partial_load(tmp_path):
    from safetensors.torch import load_file, save_file

    from app.inference.hash_cache import sha256_of

    manifest = make_package(tmp_path)
    state = load_file(str(manifest.weights_path))
    del state["_blocks.3._bn1.running_var"]
    save_file(state, str(manifest.weights_path))
    raw = json.loads((manifest.folder / "model.json").read_text())
    raw["weights"]["sha256"] = sha256_of(manifest.weights_path)
    (manifest.folder / "model.json").write_text(json.dumps(raw))
    with pytest.raises(ModelPackageError, match=r"1 missing \(e\.g\. _blocks\.3\._bn1\.running_var"):
        InferenceEngine("cpu").run(read_manifest(manifest.folder), loaded(np.zeros((64, 64), np.uint8)))


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_pickled_code_in_a_weights_file_is_never_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "weights.pt"
    torch.save({"layer.weight": torch.zeros(1), "trap": _Payload()}, path)
    with pytest.raises(ModelPackageError, match="without unpickling"):
        read_state_dict(path)
    assert not (tmp_path / "PWNED").exists()
    torch.save({"layer.weight": torch.ones(2)}, path)
    assert torch.equal(read_state_dict(path)["layer.weight"], torch.ones(2))


def test_manifest_problems_name_the_field(tmp_path):
    manifest = make_package(tmp_path)
    raw = json.loads((manifest.folder / "model.json").read_text())
    for change, message in [({"task": "detection"}, "task must be"), ({"weights": {"file": "w", "sha256": "x"}},
                                                                        "sha256 must be 64 hex")]:
        (manifest.folder / "model.json").write_text(json.dumps({**raw, **change}))
        with pytest.raises(ModelPackageError, match=message):
            read_manifest(manifest.folder)


def test_registry_matches_models_to_modalities_and_reports_broken_packages(tmp_path):
    make_package(tmp_path, "us-model", modality="US")
    make_package(tmp_path, "mr-model", modality=["MR"])
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model.json").write_text("{")
    registry = ModelRegistry.discover([tmp_path])
    assert registry.default_for("MR").name == "mr-model" and registry.default_for("US").name == "us-model"
    assert registry.default_for("") is None and registry.default_for("CT") is None
    assert len(registry.problems) == 1 and "unreadable manifest" in str(registry.problems[0])


# ---- running -------------------------------------------------------------------------------------
def test_every_result_carries_its_image_and_model(tmp_path):
    manifest = make_package(tmp_path)
    image = loaded(np.zeros((50, 80), np.uint8), "study-A/img-3")
    result = InferenceEngine("cpu").run(manifest, image)
    assert result.image_identity == image.info.identity and result.model_key == "test-cls@0.0.1"
    assert result.probabilities.shape == (3,) and abs(result.probabilities.sum() - 1) < 1e-5
    assert set(result.heatmaps) == {"head (1/32)"} and result.heatmaps["head (1/32)"].shape == (50, 80)


def test_segmentation_gives_a_probability_mask_on_the_image_grid(tmp_path):
    manifest = make_package(tmp_path, "seg", task="segmentation")
    result = InferenceEngine("cpu").run(manifest, loaded(np.random.default_rng(0).integers(0, 255, (70, 45), np.uint8)))
    assert result.mask.shape == (70, 45) and 0 <= result.mask.min() and result.mask.max() <= 1
    assert [layer.kind for layer in TASKS[result.task].layers(result)] == ["mask"]


def test_mirror_average_is_the_mean_of_the_image_and_its_mirror_image(tmp_path):
    manifest = make_package(tmp_path, "seg", task="segmentation")
    pixels = np.random.default_rng(1).integers(0, 255, (64, 64), np.uint8)  # the input size: no resize, no padding
    plain = InferenceEngine("cpu").run(manifest, loaded(pixels, "a")).mask
    of_mirror = InferenceEngine("cpu").run(manifest, loaded(pixels[:, ::-1].copy(), "b")).mask
    averaged = InferenceEngine("cpu").run(replace(manifest, settings={**manifest.settings, "mirror_average": True}),
                                          loaded(pixels, "c")).mask
    assert np.abs(plain - of_mirror[:, ::-1]).max() > 1e-4  # random weights: the two maps differ, a little
    np.testing.assert_allclose(averaged, (plain + of_mirror[:, ::-1]) / 2, atol=1e-6)


def test_a_classifier_carries_the_lesion_mask_its_settings_name_unless_it_calls_the_image_normal(tmp_path):
    segmenter = make_package(tmp_path, "seg", task="segmentation")
    image = loaded(np.random.default_rng(2).integers(0, 255, (70, 45), np.uint8))
    engine = InferenceEngine("cpu")
    called = int(np.argmax(engine.run(make_package(tmp_path, "plain"), image).probabilities))
    classes = ("normal", "benign", "malignant")
    make_package(tmp_path, "masked", settings={"lesion_mask": {"model": "seg", "not_when": []}})
    make_package(tmp_path, "gated", settings={"lesion_mask": {"model": "seg", "not_when": [classes[called]]}})
    make_package(tmp_path, "orphan", settings={"lesion_mask": {"model": "not-here"}})
    registry = ModelRegistry.discover([tmp_path])
    masked = engine.run(registry.get("masked"), image)
    np.testing.assert_array_equal(masked.mask, engine.run(segmenter, image).mask)
    assert masked.mask_source == "seg@0.0.1" and masked.model_key == "masked@0.0.1" and masked.probabilities is not None
    assert [layer.kind for layer in TASKS["classification"].layers(masked)] == ["heatmap", "mask"]
    assert TASKS["classification"].layers(masked)[1].source == "seg@0.0.1"
    assert float(TASKS["classification"].csv_row(masked)["mask_fraction"]) == float((masked.mask >= 0.5).mean())
    gated = engine.run(registry.get("gated"), image)
    assert gated.mask is None and f"calls the image {classes[called]}" in gated.mask_note
    assert TASKS["classification"].csv_row(gated)["mask_fraction"] == ""
    assert "not-here is not installed" in engine.run(registry.get("orphan"), image).mask_note


def test_a_lesion_mask_setting_is_checked_when_the_package_is_read(tmp_path):
    for name, task, rule, message in [("a", "segmentation", {"model": "seg"}, "on a classifier"),
                                      ("b", "classification", {"model": "seg", "not_when": ["cat"]}, "'cat'"),
                                      ("c", "classification", {"not_when": []}, "must be")]:
        manifest = make_package(tmp_path, name, task=task)
        raw = json.loads((manifest.folder / "model.json").read_text())
        (manifest.folder / "model.json").write_text(json.dumps({**raw, "settings": {"lesion_mask": rule}}))
        with pytest.raises(ModelPackageError, match=message):
            read_manifest(manifest.folder)


def test_a_failing_gpu_reruns_on_the_cpu_and_says_so(tmp_path, monkeypatch):
    manifest = make_package(tmp_path)
    engine = InferenceEngine("auto")
    monkeypatch.setattr(runner_module, "choose_device", lambda _preference: torch.device("cuda"))
    real_run_on = engine._run_on

    def run_on(device, *args):
        if device.type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_run_on(device, *args)

    monkeypatch.setattr(engine, "_run_on", run_on)
    result = engine.run(manifest, loaded(np.zeros((64, 64), np.uint8)))
    assert result.device == "cpu" and "GPU failed" in result.note and "out of memory" in result.note


def test_other_errors_are_not_hidden_by_the_fallback(tmp_path, monkeypatch):
    manifest = make_package(tmp_path)
    engine = InferenceEngine("auto")
    monkeypatch.setattr(runner_module, "choose_device", lambda _preference: torch.device("cuda"))
    monkeypatch.setattr(engine, "_run_on", lambda *_: (_ for _ in ()).throw(ValueError("bad input")))
    with pytest.raises(ValueError, match="bad input"):
        engine.run(manifest, loaded(np.zeros((64, 64), np.uint8)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
def test_half_precision_on_cuda_matches_the_cpu(tmp_path):
    manifest = make_package(tmp_path)
    pixels = np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)
    on_gpu = InferenceEngine("cuda").run(manifest, loaded(pixels))
    on_cpu = InferenceEngine("cpu").run(manifest, loaded(pixels))
    assert on_gpu.device.startswith("cuda")
    assert np.abs(on_gpu.probabilities - on_cpu.probabilities).max() < 0.02


# ---- radlens predict -----------------------------------------------------------------------------
def test_predict_writes_csv_masks_and_pictures_and_lists_unreadable_inputs(tmp_path):
    models = tmp_path / "models"
    make_package(models, "toy-seg", task="segmentation")
    source = tmp_path / "in"
    (source / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    cv2.imwrite(str(source / "a.png"), rng.integers(0, 255, (60, 90), np.uint8))
    cv2.imwrite(str(source / "sub" / "b.png"), rng.integers(0, 255, (40, 30, 3), np.uint8))
    (source / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 20)
    env = {**os.environ, "RADLENS_MODEL_PATH": str(models), "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-m", "app", "predict", str(source), str(tmp_path / "out"),
                           "--model", "toy-seg", "--device", "cpu"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "broken.png" in done.stderr
    with open(tmp_path / "out" / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["image"] for r in rows) == ["a.png", "sub/b.png"]
    assert list(rows[0])[:3] == ["image", "model", "p_lesion"] and rows[0]["model"] == "toy-seg"
    mask = cv2.imread(str(tmp_path / "out" / "masks" / "sub" / "b.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (40, 30) and set(np.unique(mask)) <= {0, 255}
    assert (tmp_path / "out" / "visualizations" / "a.png").is_file()


# ---- out-of-distribution guard -------------------------------------------------------------------
def test_feature_distribution_flags_what_lies_far_from_the_training_features(tmp_path):
    from app.inference.ood import FeatureDistribution

    rng = np.random.default_rng(0)
    training = rng.normal(size=(400, 32)) @ rng.normal(size=(32, 64))
    guard = FeatureDistribution.fit(training)
    assert (guard.distance(training) > guard.limit).mean() <= 0.01
    assert (guard.distance(rng.normal(size=(50, 32)) @ rng.normal(size=(32, 64)) + 8) > guard.limit).all()
    sha = guard.save(tmp_path / "ood.safetensors")
    again = FeatureDistribution.load(tmp_path / "ood.safetensors", sha)
    assert np.allclose(again.distance(training[:5]), guard.distance(training[:5]), rtol=1e-4)


def test_a_result_says_when_the_image_is_unlike_the_models_training_images(tmp_path):
    from app.inference.ood import FeatureDistribution

    manifest = make_package(tmp_path)
    network = InferenceEngine("cpu").network(manifest, torch.device("cpu"))
    rng = np.random.default_rng(0)
    speckle = [rng.integers(0, 80, (64, 64)).astype(np.uint8) for _ in range(60)]  # dark, grainy "ultrasound"
    pooled = []
    hook = network._head_activation.register_forward_hook(lambda _m, _i, out: pooled.append(out.mean((2, 3))))
    from app.inference.preprocess import prepare_input

    with torch.inference_mode():
        for pixels in speckle:
            network(prepare_input(loaded(pixels), 0, manifest.input)[0])
    hook.remove()
    guard = FeatureDistribution.fit(torch.cat(pooled).numpy())
    sha = guard.save(manifest.folder / "ood.safetensors")
    manifest = replace(manifest, ood={"file": "ood.safetensors", "sha256": sha, "layer": "_head_activation"})
    engine = InferenceEngine("cpu")
    alike = engine.run(manifest, loaded(rng.integers(0, 80, (64, 64)).astype(np.uint8)))
    stripes = np.tile(np.repeat(np.array([0, 255], np.uint8), 4), (64, 8))[:, :64]
    unlike = engine.run(manifest, loaded(stripes))
    assert not alike.out_of_distribution and unlike.out_of_distribution
    assert unlike.ood_distance > unlike.ood_limit > alike.ood_distance


def test_a_gpu_fallback_is_logged_once(tmp_path, monkeypatch, caplog):
    manifest = make_package(tmp_path)
    engine = InferenceEngine("auto")
    monkeypatch.setattr(runner_module, "choose_device", lambda _preference: torch.device("cuda"))
    real_run_on = engine._run_on
    monkeypatch.setattr(engine, "_run_on", lambda device, *args: (_ for _ in ()).throw(
        torch.cuda.OutOfMemoryError("CUDA out of memory")) if device.type == "cuda" else real_run_on(device, *args))
    caplog.set_level("INFO")
    engine.run(manifest, loaded(np.zeros((64, 64), np.uint8)))
    assert [r.getMessage() for r in caplog.records if "GPU failed" in r.getMessage()] == [
        "The GPU failed (CUDA out of memory); test-cls ran on the CPU instead"]
