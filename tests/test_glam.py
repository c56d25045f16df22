"""GLAM: preprocessing against the published figures, the networks' names, the pipeline's steps,
importing official checkpoints, and results placed back on the image."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from app.core.image import ImageInfo, LoadedImage
from app.inference.glam.checkpoint import UNUSED_JOINT_KEYS, checked_state_dict, import_checkpoint
from app.inference.glam.crop import CropSettings, crop_breast
from app.inference.glam.networks import GlamNetwork, GlobalNetwork
from app.inference.glam.pipeline import (GlamSettings, fuse, prepare_view, select_patches, top_t_pool)
from app.inference.glam.window import best_center
from app.inference.manifest import ModelPackageError
from app.inference.runner import InferenceEngine
from app.inference.tasks import TASKS
from tests.model_factory import make_glam_package

# From the GLAM README for sample exam 0 (see ../shared/datasets/README.md).
PUBLISHED = {
    "L-CC": ((0, 2023, 0, 801), ((948, 957), 750), (1972, (100, 100)), (1011, -211)),
    "R-CC": ((0, 2144, 0, 801), ((1232, 1249), 751), (2093, (101, 101)), (1072, -210)),
    "L-MLO": ((0, 2730, 0, 981), ((1733, 1749), 930), (2679, (100, 101)), (1206, -31)),
    "R-MLO": ((0, 2650, 0, 1006), ((1571, 1648), 956), (2599, (101, 102)), (1126, -5)),
}


@pytest.mark.shared_data
@pytest.mark.parametrize("view", list(PUBLISHED))
def test_cropping_and_optimal_centre_reproduce_the_published_figures(shared_datasets, view):
    pixels = cv2.imread(str(shared_datasets / "glam_sample" / "images" / f"0_{view}.png"), cv2.IMREAD_UNCHANGED)
    crop = crop_breast(pixels, right_view=view.startswith("R"))
    location, rightmost, bottommost, centre = PUBLISHED[view]
    assert crop.window_location == location
    assert crop.rightmost_points == rightmost
    assert crop.bottommost_points == bottommost
    assert best_center(crop, view.split("-")[1], (2944, 1920)) == centre


@pytest.mark.shared_data
def test_the_networks_have_exactly_the_official_parameter_names_and_shapes(shared_datasets):
    listed = {}
    for line in (shared_datasets.parent / "glam" / "state_dict_keys.tsv").read_text().splitlines():
        if line and not line.startswith("#"):
            name, shape = line.split("\t")
            listed[name] = tuple(int(v) for v in shape.strip("()").split(",") if v.strip())
    ours = {name: tuple(tensor.shape) for name, tensor in GlamNetwork().state_dict().items()}
    assert ours == listed


def test_global_network_maps_have_the_stage_3_grid_and_the_published_size():
    network = GlobalNetwork().eval()
    assert sum(p.numel() for p in network.parameters()) == pytest.approx(2.8e6, rel=0.01)
    with torch.inference_mode():
        maps = network(torch.zeros(1, 1, 256, 160))
    assert [tuple(m.shape) for m in maps] == [(1, 2, 16, 10)] * 3


def test_standardised_window_pads_cc_on_both_sides_and_mlo_below():
    pixels = np.zeros((100, 60), np.float32)
    pixels[:, :40] = 1000 + np.arange(100)[:, None]  # chest wall on the left (a left view)
    settings = GlamSettings(window=(160, 96), patch=32, crop=CropSettings(erode_iterations=2, buffer=2))
    cc, mlo = (prepare_view(pixels, False, view, settings) for view in ("CC", "MLO"))
    assert (cc.placement.top, mlo.placement.top) == (-30, 0)
    for prepared in (cc, mlo):
        assert prepared.window.shape == (160, 96)
        assert abs(float(prepared.window.mean())) < 1e-4 and float(prepared.window.std()) == pytest.approx(1, rel=1e-3)
    assert len(np.unique(mlo.window[100:])) == 1  # padding below the MLO breast only


def test_top_t_pooling_averages_the_highest_share():
    maps = torch.zeros(1, 1, 10, 10)
    maps.view(-1)[:3] = torch.tensor([1.0, 0.5, 0.3])
    assert top_t_pool(maps, 0.03).item() == pytest.approx(0.6)


def test_the_patch_goes_where_the_summed_normalised_saliency_peaks():
    saliency = torch.zeros(1, 2, 20, 12)
    saliency[0, 1, 13, 9] = 5.0  # one hot malignant cell
    saliency[0, 0] = 0.1  # a flat benign map adds nothing after min-max normalisation
    (row, col), = select_patches(saliency, patch=64)  # 4 x 4 cells
    assert (row // 16, col // 16) == (10, 6)  # the first window holding the cell (row-major arg-max)
    assert row % 16 == 0 and col % 16 == 0


def test_fusion_is_the_mean_inside_the_patch_and_half_the_global_map_outside():
    saliency = torch.full((1, 2, 8, 8), 0.4)
    local = torch.full((1, 2, 8, 8), 1.0)  # a 32-pixel patch at stride 4
    fused = fuse(saliency, local, [(16, 32)])
    assert fused.shape == (1, 2, 32, 32)
    assert fused[0, 0, 4, 8].item() == pytest.approx(0.7)
    assert fused[0, 0, 0, 0].item() == pytest.approx(0.2)
    assert fused[0, 0, 12, 16].item() == pytest.approx(0.2)


def _mammogram(right: bool, lesion_at: tuple[int, int]) -> LoadedImage:
    pixels = np.zeros((300, 200), np.uint16)
    pixels[20:280, :130] = 800
    y, x = lesion_at
    pixels[y - 8:y + 8, x - 8:x + 8] = 4000
    if right:
        pixels = pixels[:, ::-1].copy()
    info = ImageInfo(path=Path(f"/study/{'R' if right else 'L'}_MLO.png"), source_format="png", modality="MG",
                     laterality="R" if right else "L", view="MLO")
    return LoadedImage(info, pixels[None])


@pytest.mark.parametrize("right", [False, True])
def test_saliency_and_patch_land_on_the_image_grid_for_both_sides(tmp_path, right):
    manifest = make_glam_package(tmp_path)
    image = _mammogram(right, (150, 60))
    result = InferenceEngine("cpu").run(manifest, image)
    assert set(result.saliency) == {"benign", "malignant"}
    assert result.map_scale == 4.0
    for values in result.saliency.values():
        assert values.shape == (75, 50)  # the 300 x 200 image every 4 pixels
        assert values.min() >= 0 and values.max() <= 1
        assert values[:, (0 if right else -1)].max() == 0  # beyond the crop nothing is drawn
    (box,) = result.patches
    assert 0 <= box.x and box.x + box.width <= 200 and 0 <= box.y and box.y + box.height <= 300
    assert 0 <= result.probabilities.min() and result.probabilities.max() <= 1
    layers = TASKS[result.task].layers(result)
    assert [layer.name for layer in layers] == ["Benign saliency", "Malignant saliency", "Patch map"]
    assert layers[1].range_text == "saliency (not a probability) 0 to 1" and layers[1].colormap == "reds"


def test_a_window_map_goes_back_to_the_pixels_it_came_from(tmp_path):
    """A map that is hot in one window cell must be hot over the same tissue in a mirrored view."""
    settings = GlamSettings(window=(256, 160), patch=64, crop=CropSettings(erode_iterations=4, buffer=4))
    image = _mammogram(True, (150, 60))
    prepared = prepare_view(image.frames[0].astype(np.float32), True, "MLO", settings)
    row, col = np.unravel_index(int(np.argmax(prepared.window)), prepared.window.shape)
    hot = np.zeros((64, 40), np.float32)
    hot[row // 4, col // 4] = 1
    on_image = prepared.placement.to_source(hot, prepared.source_shape, 4)
    source_row, source_col = np.unravel_index(int(np.argmax(on_image)), on_image.shape)
    assert image.frames[0][source_row * 4 + 2, source_col * 4 + 2] == 4000


def _official_like_checkpoint(path: Path, extra: dict | None = None, drop: str | None = None) -> Path:
    state = {k: torch.randn(v.shape) if v.is_floating_point() else v for k, v in GlamNetwork().state_dict().items()}
    state.update({key: torch.zeros(2) for key in UNUSED_JOINT_KEYS})
    state.update(extra or {})
    state.pop(drop, None)
    torch.save(state, path)
    return path


def test_an_official_joint_checkpoint_imports_into_a_package_that_runs(tmp_path):
    checkpoint = _official_like_checkpoint(tmp_path / "model_joint.ckpt")
    manifest = import_checkpoint(checkpoint, tmp_path / "models")
    assert manifest.task == "glam" and manifest.classes == ("benign", "malignant")
    assert manifest.settings["glam"]["window"] == [2944, 1920] and manifest.settings["glam"]["patch"] == 512
    network = InferenceEngine("cpu").network(manifest, torch.device("cpu"))
    original = torch.load(checkpoint, weights_only=True)
    key = "detection_network.dn_resnet.layer3.2.conv1.weight"
    assert torch.equal(network.state_dict()[key], original[key])


@pytest.mark.parametrize("change, reason", [
    ({"drop": "global_network.postprocess_module.gn_conv_2.weight"}, "1 missing"),
    ({"extra": {"global_network.extra_head.weight": torch.zeros(1)}}, "1 unexpected"),
    ({"extra": {"detection_network.gn_conv_last.weight": torch.zeros(3, 512, 1, 1)}}, "of another shape"),
])
def test_a_checkpoint_that_does_not_fit_is_refused_with_the_reason(tmp_path, change, reason):
    checkpoint = _official_like_checkpoint(tmp_path / "bad.ckpt", **change)
    with pytest.raises(ModelPackageError, match=reason):
        import_checkpoint(checkpoint, tmp_path / "models")
    assert not (tmp_path / "models").exists()


def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path):
    import pickle

    class Boom:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "ran",))

    (tmp_path / "evil.ckpt").write_bytes(pickle.dumps({"x": Boom()}))
    with pytest.raises(ModelPackageError, match="refused: the file holds a pickle") as refused:
        checked_state_dict(tmp_path / "evil.ckpt")
    assert not (tmp_path / "ran").exists()
    assert "\n" not in refused.value.reason and len(refused.value.reason) < 200


def test_images_that_state_their_pixel_spacing_are_read_at_the_models_pixel_size(tmp_path):
    from dataclasses import replace

    from app.inference.glam.on_images import run_images, settings_for

    settings = GlamSettings(window=(128, 80), patch=32, pixel_size_mm=0.4, resample=1.0,
                            crop=CropSettings(erode_iterations=2, buffer=2))
    image = _mammogram(False, (150, 60))
    fine = LoadedImage(replace(image.info, pixel_spacing=(0.2, 0.2)), image.frames)
    assert settings_for(fine, settings).resample == 0.5
    assert settings_for(image, settings).resample == 1.0  # no spacing: the package's fallback
    (result,) = run_images(GlamNetwork().eval(), [(fine, 0)], settings)
    assert result.map_scale == 8.0  # 4 window pixels of 0.4 mm = 8 image pixels of 0.2 mm
    assert result.patch.width == 64 and result.patch.x + 64 <= 200 and result.patch.y + 64 <= 300
    assert result.saliency["benign"].shape == (38, 25)


def test_tissue_only_models_keep_saliency_and_the_patch_on_the_breast():
    from app.inference.glam.pipeline import run_views

    settings = GlamSettings(window=(256, 160), patch=64, tissue_only=True,
                            crop=CropSettings(erode_iterations=2, buffer=2))
    pixels = np.zeros((200, 120), np.float32)
    pixels[10:190, :50] = 500  # a narrow breast: most of the window is padding
    prepared = prepare_view(pixels, False, "MLO", settings)
    torch.manual_seed(1)
    (output,) = run_views(GlamNetwork().eval(), [prepared], settings)
    outside = prepared.tissue == 0
    assert outside.mean() > 0.5 and np.all(output.global_saliency[:, outside] == 0)
    row, col = output.patch_corner
    assert prepared.tissue[row // 16:row // 16 + 4, col // 16:col // 16 + 4].any()


def test_a_models_warning_from_its_card_travels_with_every_result(tmp_path):
    import json

    manifest = make_glam_package(tmp_path)
    raw = json.loads((manifest.folder / "model.json").read_text())
    raw["card"]["warning"] = "did not reach its targets"
    (manifest.folder / "model.json").write_text(json.dumps(raw))
    from app.inference.manifest import read_manifest

    result = InferenceEngine("cpu").run(read_manifest(manifest.folder), _mammogram(False, (150, 60)))
    assert result.note == "did not reach its targets"


@pytest.mark.parametrize(("padding", "stem_grid"), [(0, (735, 479)), (1, (736, 480))])
def test_global_network_grids_on_a_full_window(padding, stem_grid):
    """The official stem max-pool pads by 0: 735 x 479 after the stem on a 2944 x 1920 window (the
    reference implementation's grid); padding 1 (736 x 480) is kept only for packages that say so.
    The grids meet again at 184 x 120 after stage 3, so only these intermediate sizes show it."""
    from app.inference.networks import build_network

    network = build_network({"type": "glam", "stem_pool_padding": padding}).global_network.to("meta")
    branch, grids = network.downsampling_branch, []
    branch.first_conv.register_forward_hook(lambda m, i, out: grids.append(tuple(out.shape[-2:])))
    for stage in branch.layer_list:
        stage.register_forward_hook(lambda m, i, out: grids.append(tuple(out.shape[-2:])))
    network(torch.empty(1, 1, 2944, 1920, device="meta"))
    assert grids == [(1472, 960), stem_grid, (368, 240), (184, 120), (92, 60), (46, 30)]
    assert GlamNetwork().global_network.downsampling_branch.stem_pool_padding == 0  # official by default


def test_imported_glam_packages_use_the_official_stem_padding(tmp_path):
    state = {k: torch.randn(v.shape) if v.is_floating_point() else v for k, v in GlamNetwork().state_dict().items()}
    torch.save(state, tmp_path / "joint.pth")
    manifest = import_checkpoint(tmp_path / "joint.pth", tmp_path / "models")
    assert manifest.network.get("stem_pool_padding", 0) == 0
