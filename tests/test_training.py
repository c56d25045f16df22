"""Training the CNN models: image packs, device-side augmentation, the shifted validation, and the whole chain
from a pack to a package the app loads (tiny networks and images, on the CPU)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from app.inference.manifest import InputSpec
from app.inference.options import ExplainOptions
from app.inference.preprocess import prepare_input
from app.inference.registry import ModelRegistry
from app.inference.runner import InferenceEngine
from app.training.augment import ULTRASOUND, Augmentation, augment, content_masks
from app.training.finetune import DeviceData, Recipe
from app.training.imagepack import LOOK_FIGURES, ImagePack, letterbox, look_figures
from app.training.recipes import PLANS
from app.training.shift import look_halves
from tests.test_inference import loaded


def test_a_pack_places_an_image_exactly_as_the_app_feeds_it():
    pixels = np.random.default_rng(0).integers(0, 256, (90, 150), np.uint8)
    spec = InputSpec(size=(64, 64), channels=3, resize="letterbox", mean=(0.5,) * 3, std=(0.5,) * 3)
    tensor, _ = prepare_input(loaded(pixels), 0, spec)
    packed = np.rint(letterbox(pixels.astype(np.float32) / 255, 64) * 255) / 255
    data = DeviceData(_pack(packed[None], [0], [(90, 150)]), torch.device("cpu"))
    x, _ = data.batch(np.array([0]), 64, None)
    assert torch.allclose(x, tensor, atol=1.5 / 255 * 2)


def test_augmentation_keeps_the_padding_black_and_moves_the_mask_with_the_image():
    torch.manual_seed(0)
    images = torch.zeros((8, 1, 64, 64))
    images[:, :, 16:48, 8:56] = 0.3
    images[:, :, 24:32, 24:32] = 1.0
    masks = torch.zeros_like(images)
    masks[:, :, 24:32, 24:32] = 1
    content = content_masks([(40, 60)] * 8, 64, "cpu")
    spec = replace(ULTRASOUND, gamma_log_sd=0.0, contrast=(1.0, 1.0), brightness=0.0, noise_sd=0.0,
                   speckle_sd=0.0, depth_gain=0.0, blur_probability=0.0)
    out, moved = augment(images, content, masks, spec)
    assert out.min() >= 0 and out.max() <= 1
    assert moved.sum() > 0 and not torch.equal(moved, masks)  # the geometry changed ...
    assert out[moved.bool()].mean() > 0.9 and out[~moved.bool()].mean() < 0.4  # ... and the mask followed
    still = Augmentation(rotation_degrees=0, scale=(1, 1), shift=0, mirror=False, brightness=0.3, speckle_sd=0.2,
                         depth_gain=0.3)
    brighter, _ = augment(images, content, None, still)
    assert torch.all(brighter[:, :, :10] == 0) and torch.all(brighter[:, :, 54:] == 0)  # the padding stays black
    assert not torch.equal(brighter[:, :, 10:54], images[:, :, 10:54])


def test_the_shifted_halves_keep_groups_whole_and_split_by_look():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], 40)
    groups = np.array([f"g{i // 2}" for i in range(80)])
    looks = np.zeros((80, len(LOOK_FIGURES)), np.float32)
    looks[:, :2] = 500
    looks[:, 2] = 1
    brightness = rng.uniform(0.1, 0.9, 80)
    brightness[1::2] = brightness[0::2]  # a group shares its look
    looks[:, LOOK_FIGURES.index("mean")] = brightness
    looks[:, LOOK_FIGURES.index("sharpness")] = 1
    halves = look_halves(labels, groups, looks)
    for group in set(groups):
        assert len(set(halves[groups == group])) == 1
    for label in (0, 1):
        assert 15 <= (halves[labels == label] == 0).sum() <= 25
    assert abs(brightness[halves == 0].mean() - brightness[halves == 1].mean()) > 0.25


def test_look_figures_describe_size_brightness_and_sharpness():
    flat = np.full((100, 200), 0.5, np.float32)
    figures = dict(zip(LOOK_FIGURES, look_figures(flat)))
    assert figures["height"] == 100 and figures["width"] == 200 and figures["aspect"] == 2
    assert figures["mean"] == pytest.approx(0.5) and figures["sharpness"] == pytest.approx(0, abs=1e-6)


def test_the_first_training_run_reads_the_same_pixels_as_every_run_after_it(tmp_path, monkeypatch):
    """The pack on disk is JPEG-compressed; a first run that trained on the lossless decode could not be
    reproduced by the next one, which reads the file."""
    from app.training import cnn_command, datasets, imagepack

    noise = np.random.default_rng(0).random((3, 32, 32))
    monkeypatch.setattr(datasets, "list_samples", lambda dataset: [])
    monkeypatch.setattr(imagepack, "build_pack", lambda *a, **k: _pack(noise, [0, 1, 2], [(32, 32)] * 3))
    first = cnn_command.make_pack("us-breast-cls", tmp_path)
    again = cnn_command.make_pack("us-breast-cls", tmp_path)
    assert not np.array_equal(first.images, _pack(noise, [0, 1, 2], [(32, 32)] * 3).images)  # JPEG changed them
    assert np.array_equal(first.images, again.images)


def _pack(images01, labels, sizes, masks=None) -> ImagePack:
    n = len(labels)
    looks = np.zeros((n, len(LOOK_FIGURES)), np.float32)
    looks[:, 0], looks[:, 1] = np.array(sizes, float).T
    looks[:, LOOK_FIGURES.index("mean")] = np.linspace(0, 1, n)
    looks[:, LOOK_FIGURES.index("sharpness")] = 1
    return ImagePack(np.rint(np.asarray(images01) * 255).astype(np.uint8), np.asarray(labels, np.int64),
                     np.array([f"g{i}" for i in range(n)]), np.array([f"{i}.png" for i in range(n)]), looks, masks)


def _discs(n: int, size: int = 48) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class 0: a bright disc; class 1: a bright ring, at random places; masks mark the shape."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    images, masks, labels = [], [], []
    for i in range(n):
        label = i % 2
        cy, cx = rng.uniform(14, size - 14, 2)
        distance = np.hypot(yy - cy, xx - cx)
        shape = (distance < 8) if label == 0 else ((distance < 9) & (distance > 5))
        images.append(np.clip(0.2 + 0.7 * shape + rng.normal(0, 0.03, (size, size)), 0, 1))
        masks.append(shape.astype(np.uint8))
        labels.append(label)
    return np.array(images), np.array(masks), np.array(labels)


@pytest.mark.parametrize("model", ["cr-chest-cls", "us-breast-seg"])
def test_a_pack_becomes_a_package_the_app_loads_with_an_honest_card(tmp_path, model):
    from app.training.cnn_run import run_classifier, run_segmenter, save_run
    from app.training.package import write_classifier, write_segmenter

    images, masks, labels = _discs(40)
    pack = _pack(images, labels, [(48, 48)] * 40, masks if model == "us-breast-seg" else None)
    recipe = Recipe(size=64, epochs=2, batch=8, augmentation=Augmentation(), learning_rate=3e-3)
    device = torch.device("cpu")
    run_dir = tmp_path / "runs" / model
    if model == "us-breast-seg":
        save_run({**run_segmenter(pack, device, [recipe, replace(recipe, size=32)]), "data": {}}, run_dir)
        manifest = write_segmenter(run_dir, tmp_path / "models" / model, 40, "test data", None)
        tried = manifest.card["training"]["candidates"]  # the better Dice on the shifted halves is shipped
        assert [c["size"] for c in tried] == [64, 32]
        assert manifest.input.size[0] == max(tried, key=lambda c: c["shifted_dice"])["size"]
        assert {"held_out_fifth", "shifted_halves"} <= set(manifest.card["metrics"])
        assert "normal_images_without_mask" in manifest.card["metrics"]["held_out_fifth"]["any_mask"]
        shifted = manifest.card["metrics"]["shifted_halves"]  # test-time mirroring measured, kept only where it pays
        assert manifest.settings["mirror_average"] == (
            shifted["mirror_average"]["dice"]["mean"] >= shifted["any_mask"]["dice"]["mean"]
            and shifted["mirror_average"]["normal_images_without_mask"]
            >= shifted["any_mask"]["normal_images_without_mask"])
    else:
        rule = {"model": "us-breast-seg", "not_when": ["normal"]}  # the plan's settings reach the package
        plan = replace(PLANS[model], candidates=(recipe, replace(recipe, size=32)), settings={"lesion_mask": rule})
        saved = []
        result = run_classifier(plan, pack, device, list(plan.candidates), folds=2,
                                save=lambda r: saved.append(r["figures"]["cross_validated"]))
        assert saved[0] == "not run" and isinstance(saved[1], dict)  # the final model is kept before the CV
        save_run({**result, "data": {}}, run_dir)
        manifest = write_classifier(plan, run_dir, tmp_path / "models" / model, 40, {"normal": 20, "pneumonia": 20},
                                    40, None)
        metrics = manifest.card["metrics"]
        assert {"expected_on_new_data", "cross_validated", "ood_guard_on_shifted_validation"} <= set(metrics)
        guards = metrics["ood_guard_on_shifted_validation"]
        assert {"flagged_when_correct", "flagged_when_wrong"} <= set(guards["shared ImageNet trunk (shipped)"])
        assert manifest.ood["trunk"] == "efficientnet-lite0-imagenet"
        assert [row["size"] for row in manifest.card["training"]["candidates"]] == [64, 32]
        assert manifest.input.size == (result["recipe"].size,) * 2
        assert manifest.settings["temperature"] == pytest.approx(result["temperature"], abs=1e-4)
        assert manifest.lesion_mask == rule and "except where this model's most probable class is normal" in (
            manifest.card["lesion_mask"])
    registry = ModelRegistry.discover([tmp_path / "models"])
    assert not registry.problems, registry.problems
    package = registry.get(model)
    out = InferenceEngine("cpu").run(package, loaded(np.uint8(images[0] * 255)), options=ExplainOptions(layers=()))
    assert out.ood_distance is not None
    if model == "us-breast-seg":
        assert out.mask.shape == (48, 48)
    else:
        assert out.probabilities.shape == (2,) and out.calibrated


def test_imagenet_weights_come_from_the_packages_or_a_folder_of_their_files(tmp_path):
    from app.inference.networks import imagenet_weights_path
    from app.training.finetune import imagenet_state

    for variant in ("lite0", "lite1", "lite2"):  # a GPU machine without the packages gets a folder of copies
        (tmp_path / imagenet_weights_path(variant).name).symlink_to(imagenet_weights_path(variant))
    assert torch.equal(imagenet_state("lite2", tmp_path)["_conv_stem.weight"],
                       imagenet_state("lite2")["_conv_stem.weight"])
    assert imagenet_state("lite1", tmp_path)["_conv_head.weight"].shape == (1280, 320, 1, 1)
    with pytest.raises(FileNotFoundError, match="for lite1 give a folder"):
        imagenet_state("lite1", imagenet_weights_path("lite0"))
    with pytest.raises(FileNotFoundError, match="no efficientnet-lite3"):
        imagenet_state("lite3", tmp_path)


def test_train_tries_every_variant_with_every_candidate_recipe():
    from app.training.cnn_command import _variants

    assert _variants(None) == [] and _variants("lite0, lite2") == ["lite0", "lite2"]
    with pytest.raises(SystemExit, match="unknown variant 'lite9'"):
        _variants("lite9")
