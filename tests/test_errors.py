"""Errors share one base (what failed, why); inference reports its own errors in their words, bugs as bugs."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from app.core.errors import RadLensError
from app.inference.device import choose_device
from app.inference.manifest import ModelPackageError
from app.inference.registry import ModelRegistry
from app.inference.runner import InferenceEngine
from app.inference.tasks import InferenceError
from app.io.errors import StudyLoadError
from tests.model_factory import make_package


def test_every_reported_error_shares_the_base_and_says_what_and_why(tmp_path):
    for error in (ModelPackageError(tmp_path, "damaged"), StudyLoadError(tmp_path / "a.dcm", "truncated"),
                  InferenceError("no breast found")):
        assert isinstance(error, RadLensError) and error.reason in str(error)
    with pytest.raises(RadLensError, match="not installed"):
        ModelRegistry(models=[]).get("absent")
    with pytest.raises(KeyError):  # still a KeyError for callers that look names up
        ModelRegistry(models=[]).get("absent")
    with pytest.raises(RadLensError, match="device must be one of"):
        choose_device("tpu")


def test_predict_names_a_bug_as_a_bug_and_a_model_error_in_its_words(tmp_path, monkeypatch):
    import cv2

    from app.commands.predict import predict_folder

    root = tmp_path / "models"
    make_package(root, "toy", modality="US")
    source = tmp_path / "in"
    source.mkdir()
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(source / name), np.random.default_rng(0).integers(0, 255, (40, 50), np.uint8))
    calls = []

    def run(self, manifest, image, *args, **kwargs):
        calls.append(image.info.path.name)
        if image.info.path.name == "a.png":
            raise ValueError("an index went wrong")  # a bug, not the model's message
        raise InferenceError("no breast found")

    monkeypatch.setattr(InferenceEngine, "run", run)
    report = predict_folder(source, tmp_path / "out", model_name="toy", device="cpu", visualizations=False,
                            registry=ModelRegistry.discover([root]))
    reasons = {p.path.name: p.reason for p in report.problems}
    assert sorted(calls) == ["a.png", "b.png"] and report.predicted == 0
    assert reasons["a.png"] == "toy could not run (ValueError: an index went wrong)"
    assert reasons["b.png"] == "toy could not run: no breast found"
    assert list(csv.reader((tmp_path / "out" / "predictions.csv").open())) == [["image", "model"]]
