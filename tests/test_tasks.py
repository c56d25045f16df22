"""One module per AI task: the registry is the task modules, and adding a task is adding a file."""

from __future__ import annotations

import csv
import json
import os
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

import app.inference.tasks as tasks_package
from app.inference.manifest import ModelPackageError, read_manifest
from app.inference.registry import ModelRegistry
from app.inference.runner import InferenceEngine
from app.inference.tasks import TASKS, Task, discover
from tests.model_factory import make_package
from tests.test_inference import loaded

REPO = Path(__file__).resolve().parents[1]

ECHO = '''
"""A task made by the tests: class probabilities and nothing else."""

from app.inference.tasks import Task, new_result
from app.inference.visualize import display_rgb, scores_title, side_by_side


class Echo(Task):
    name = "echo"

    def run(self, network, device, manifest, image, frame, options):
        import torch

        from app.inference.preprocess import prepare_input

        tensor, _ = prepare_input(image, frame, manifest.input)
        with torch.inference_mode():
            probabilities = torch.softmax(network(tensor.to(device)).float(), dim=1)[0].cpu().numpy()
        return new_result(manifest, image, device, probabilities=probabilities)

    def picture(self, image, result, frame=0):
        return side_by_side([(scores_title(result), display_rgb(image, frame))])


TASK = Echo()
'''


def test_the_registry_is_the_task_modules_each_named_as_its_task_with_the_hooks_it_needs():
    modules = {m.name for m in pkgutil.iter_modules(tasks_package.__path__)}
    assert set(TASKS) == modules == {"classification", "segmentation", "glam"}
    for name, task in TASKS.items():
        assert type(task).__module__ == f"app.inference.tasks.{name}"
        for hook in ("run", "picture"):  # no default: every task says how it runs and what it draws
            assert getattr(type(task), hook) is not getattr(Task, hook), (name, hook)
    shipped = [json.loads(path.read_text())["task"] for path in (REPO / "models").glob("*/model.json")]
    assert shipped and set(shipped) <= set(TASKS)


def test_the_tasks_and_the_results_panel_load_without_torch():
    """The window shows results' text and offers the explanation methods before torch is loaded."""
    code = ("import sys, app.inference.tasks, app.inference.options, app.ui.results_panel; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert done.returncode == 0, done.stderr or "torch was imported"


def test_a_task_added_as_a_file_is_read_run_and_written_by_predict(tmp_path, monkeypatch):
    folder = tmp_path / "more_tasks"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "echo.py").write_text(textwrap.dedent(ECHO))
    monkeypatch.syspath_prepend(str(tmp_path))
    manifest = make_package(tmp_path / "models", "toy-echo")
    raw = json.loads((manifest.folder / "model.json").read_text())
    (manifest.folder / "model.json").write_text(json.dumps({**raw, "task": "echo"}))
    with pytest.raises(ModelPackageError, match="task must be one of"):
        read_manifest(manifest.folder)

    for name, task in discover([str(folder)], "more_tasks").items():
        monkeypatch.setitem(TASKS, name, task)
    manifest = read_manifest(manifest.folder)
    pixels = np.random.default_rng(0).integers(0, 255, (48, 64), np.uint8)
    source = tmp_path / "in"
    source.mkdir()
    cv2.imwrite(str(source / "a.png"), pixels)
    from app.commands.predict import predict_folder

    report = predict_folder(source, tmp_path / "out", model_name="toy-echo", device="cpu",
                            registry=ModelRegistry.discover([tmp_path / "models"]))
    assert report.predicted == 1 and not report.problems
    with open(tmp_path / "out" / "predictions.csv", newline="") as handle:
        (row,) = csv.DictReader(handle)
    assert list(row) == ["image", "model", "p_normal", "p_benign", "p_malignant"] and row["model"] == "toy-echo"
    assert abs(sum(float(row[f"p_{c}"]) for c in manifest.classes) - 1) < 1e-4
    assert (tmp_path / "out" / "visualizations" / "a.png").is_file()
    result = InferenceEngine("cpu").run(manifest, loaded(pixels))
    assert result.task == "echo" and TASKS[result.task].layers(result) == []
    assert TASKS["echo"].panel(result).caption == "probability (this model is not calibrated)"

