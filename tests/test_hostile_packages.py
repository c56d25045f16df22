"""Hostile and broken model packages: refused with one line, listed as unusable, never costing the others."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from app.core.image import ImageInfo, LoadedImage
from app.inference.manifest import MANIFEST_NAME, ModelPackageError, read_manifest
from app.inference.model_import import import_model
from app.inference.package_check import check_package
from app.inference.registry import ModelRegistry
from app.inference.runner import InferenceEngine
from app.inference.hash_cache import sha256_of
from app.io.limits import MANIFEST_MAX_BYTES
from tests.model_factory import make_package

ROOT = Path(__file__).resolve().parents[1]


def image() -> LoadedImage:
    pixels = np.zeros((64, 64), np.uint8)
    return LoadedImage(ImageInfo(path=Path("/nowhere/x.png"), source_format="png", rows=64, columns=64), pixels[None])


def edit_manifest(folder: Path, **changes) -> None:
    raw = json.loads((folder / MANIFEST_NAME).read_text())
    raw.update(changes)
    (folder / MANIFEST_NAME).write_text(json.dumps(raw))


def radlens(*args: str, env_models: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "RADLENS_MODEL_PATH": str(env_models), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "XDG_DATA_HOME": str(tmp_path / "data"), "RADLENS_LOG_DIR": str(tmp_path / "log")}
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180)


def outside_weights_package(tmp_path: Path, field: str = "weights") -> Path:
    """A package whose model.json names a file outside its folder, with the right hash."""
    manifest = make_package(tmp_path / "models", "escape")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "weights.safetensors").write_bytes(manifest.weights_path.read_bytes())
    name = "../../outside/weights.safetensors"
    if field == "weights":
        edit_manifest(manifest.folder, weights={"file": name, "sha256": manifest.weights_sha256})
    else:
        edit_manifest(manifest.folder, ood={"file": name, "sha256": manifest.weights_sha256, "layer": "_blocks.1"})
    manifest.weights_path.unlink() if field == "weights" else None
    return manifest.folder


@pytest.mark.parametrize("field", ["weights", "ood"])
def test_a_file_named_outside_the_package_is_refused_and_never_imported(tmp_path, field):
    folder = outside_weights_package(tmp_path, field)
    with pytest.raises(ModelPackageError, match=f"{field}.file .* leads outside the package folder"):
        read_manifest(folder)
    with pytest.raises(ModelPackageError, match="outside the package folder"):
        import_model(folder, tmp_path / "installed")
    assert not any((tmp_path / "installed").glob("*/model.json"))


@pytest.mark.parametrize("name", ["/etc/passwd", "sub/../../x.safetensors"])
def test_absolute_names_and_links_out_of_the_package_are_refused(tmp_path, name):
    manifest = make_package(tmp_path, "toy")
    edit_manifest(manifest.folder, weights={"file": name, "sha256": manifest.weights_sha256})
    with pytest.raises(ModelPackageError, match="weights.file"):
        read_manifest(manifest.folder)
    (tmp_path / "elsewhere.safetensors").write_bytes(manifest.weights_path.read_bytes())
    (manifest.folder / "link.safetensors").symlink_to(tmp_path / "elsewhere.safetensors")
    edit_manifest(manifest.folder, weights={"file": "link.safetensors", "sha256": manifest.weights_sha256})
    with pytest.raises(ModelPackageError, match="leads outside"):
        read_manifest(manifest.folder)


def test_a_package_name_that_is_a_path_is_refused_at_import(tmp_path):
    manifest = make_package(tmp_path / "src", "toy")
    edit_manifest(manifest.folder, name="../../evil")
    with pytest.raises(ModelPackageError, match="plain folder name"):
        import_model(manifest.folder, tmp_path / "installed" / "models")
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize("content, reason", [
    (b'{"name": "caf\xe9"}', "not UTF-8"),
    (b"[" * 200_000 + b"]" * 200_000, "nests too deeply"),
    (b" " * (MANIFEST_MAX_BYTES + 1) + b"{}", "more than"),
    (b"[1, 2]", "one JSON object"),
    (b'{"task": "classification", "classes": ["a"], "input": [], "name": "x"}', "list"),
])
def test_a_broken_manifest_is_listed_with_its_reason_and_every_other_model_works(tmp_path, content, reason):
    good = make_package(tmp_path / "models", "good")
    (tmp_path / "models" / "broken").mkdir()
    (tmp_path / "models" / "broken" / MANIFEST_NAME).write_bytes(content)
    registry = ModelRegistry.discover([tmp_path / "models"])
    assert [m.name for m in registry.models] == ["good"]
    assert len(registry.problems) == 1 and reason in registry.problems[0].reason
    assert InferenceEngine("cpu").run(good, image()).probabilities.shape == (3,)


def test_radlens_models_and_predict_survive_a_broken_manifest(tmp_path):
    make_package(tmp_path / "models", "toy-cls")
    (tmp_path / "models" / "deep").mkdir()
    (tmp_path / "models" / "deep" / MANIFEST_NAME).write_bytes(b"[" * 200_000)
    listing = radlens("models", env_models=tmp_path / "models", tmp_path=tmp_path)
    assert "Traceback" not in listing.stderr and listing.returncode == 1
    assert "toy-cls" in listing.stdout and "deep" in listing.stderr and "nests too deeply" in listing.stderr
    source = tmp_path / "in"
    source.mkdir()
    import cv2

    cv2.imwrite(str(source / "a.png"), np.zeros((30, 30), np.uint8))
    done = radlens("predict", str(source), str(tmp_path / "out"), "--model", "toy-cls", "--device", "cpu",
                   "--no-visualizations", env_models=tmp_path / "models", tmp_path=tmp_path)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr


def as_if_copied_in(path: Path) -> None:
    """A new modification time: the file is no longer the one whose hash was remembered."""
    status = path.stat()
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000_000))


def pickled_package(root: Path, marker: Path) -> Path:
    """A package whose .pt weights hold code that would create `marker` if it were ever unpickled."""

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    manifest = make_package(root, "pickled")
    path = manifest.folder / "weights.pt"
    torch.save({"layer.weight": torch.zeros(1), "trap": Payload()}, path)
    edit_manifest(manifest.folder, weights={"file": "weights.pt", "sha256": sha256_of(path)})
    manifest.weights_path.unlink()
    return manifest.folder


def test_listing_says_which_packages_will_be_refused_and_which_are_not_yet_verified(tmp_path):
    marker = tmp_path / "PWNED"
    models = tmp_path / "models"
    make_package(models, "fine")
    pickled_package(models, marker)
    wrong = make_package(models, "wrong-hash")
    data = bytearray(wrong.weights_path.read_bytes())
    data[-3] ^= 0xFF
    wrong.weights_path.write_bytes(bytes(data))
    listing = radlens("models", env_models=models, tmp_path=tmp_path)
    lines = {line.split()[0]: line for line in listing.stdout.splitlines()}
    assert lines["fine"].endswith("verified") and "unusable" not in lines["fine"]
    assert "unusable: refused: the file holds pickled Python code (posix.system)" in lines["pickled"]
    assert "unusable: weights.safetensors does not match its sha256" in lines["wrong-hash"]
    assert listing.returncode == 1 and "Traceback" not in listing.stderr and not marker.exists()
    log = (tmp_path / "log" / "radlens.log").read_text()
    assert log.count("Unusable model package") == 2 and log.count("holds pickled Python code") == 1
    fine = ModelRegistry.discover([models]).get("fine")
    as_if_copied_in(fine.weights_path)
    assert check_package(fine, verify_up_to=0).summary.startswith("not yet verified: weights.safetensors")
    big = make_package(tmp_path / "other", "big")  # first use verifies; listing then knows it
    as_if_copied_in(big.weights_path)
    assert check_package(big, verify_up_to=0).unverified
    InferenceEngine("cpu").run(big, image())
    assert check_package(big, verify_up_to=0).summary == "verified"


def test_a_pickled_checkpoint_is_refused_in_one_line_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "PWNED"
    folder = pickled_package(tmp_path / "src", marker)
    done = radlens("models", "import", str(folder), env_models=tmp_path / "none", tmp_path=tmp_path)
    assert done.returncode == 1 and not marker.exists()
    assert done.stderr.count("\n") == 1 and "refused: the file holds pickled Python code" in done.stderr
    assert len(done.stderr) < 400, done.stderr
    log = (tmp_path / "log" / "radlens.log").read_text()
    assert "weights_only" in log  # torch's details are in the log, not on the console
    checkpoint = tmp_path / "evil.ckpt"
    (folder / "weights.pt").rename(checkpoint)
    done = radlens("models", "import", str(checkpoint), env_models=tmp_path / "none", tmp_path=tmp_path)
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and not marker.exists(), done.stderr


def test_a_hash_mismatch_is_refused_at_import(tmp_path):
    manifest = make_package(tmp_path / "src", "toy")
    data = bytearray(manifest.weights_path.read_bytes())
    data[-3] ^= 0xFF
    manifest.weights_path.write_bytes(bytes(data))
    with pytest.raises(ModelPackageError, match="sha256"):
        import_model(manifest.folder, tmp_path / "installed")
    assert not (tmp_path / "installed" / "toy").exists()
