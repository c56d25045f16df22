"""The bad-input folder (tests/bad_inputs.py) through `radlens predict` and through the window's scan:
every good file predicted or shown, every bad file listed by name with its reason, no traceback, no hang."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.text import printable
from tests.bad_inputs import BAD, GOOD, write_bad_inputs
from tests.model_factory import make_package

ROOT = Path(__file__).resolve().parents[1]
PREDICT_PEAK_RSS_MB = 1500  # torch and a 64-pixel network take ~600 MB; no one file may add much to it
PREDICT_SECONDS = 150
MEASURED_RUN = (
    "import resource, sys; from app.cli import main; from app.crash_log import start_logging; start_logging(); "
    "code = main(sys.argv[1:]); "
    "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(code)"
)


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad-inputs")
    return folder, write_bad_inputs(folder, seed=0)


def relative(path: Path, folder: Path) -> str:
    return printable(path.relative_to(folder).as_posix())


def test_the_folder_holds_a_few_hundred_files_of_every_kind(bad_folder):
    _, made = bad_folder
    assert len(made) >= 250 and sum(m.expect == GOOD for m in made) >= 20
    kinds = " ".join(m.kind for m in made)
    for kind in ("truncated", "flipped", "named pipe", "symlink loop", "non-UTF-8", "RLE declaring", "deflate",
                 "NumberOfFrames", "empty", "random"):
        assert kind in kinds, kind


def test_predict_over_the_bad_folder_predicts_every_good_file_and_lists_every_bad_one(bad_folder, tmp_path):
    folder, made = bad_folder
    models = tmp_path / "models"
    make_package(models, "toy-cls")
    env = {**os.environ, "RADLENS_MODEL_PATH": str(models), "RADLENS_LOG_DIR": str(tmp_path / "log")}
    done = subprocess.run([sys.executable, "-c", MEASURED_RUN, "predict", str(folder), str(tmp_path / "out"),
                           "--model", "toy-cls", "--device", "cpu", "--no-visualizations"],
                          cwd=ROOT, env=env, capture_output=True, timeout=PREDICT_SECONDS)
    stderr = done.stderr.decode("utf-8", "backslashreplace")
    assert done.returncode == 0 and "Traceback" not in stderr, stderr[-3000:]
    with open(tmp_path / "out" / "predictions.csv", newline="", encoding="utf-8") as handle:
        predicted = [row["image"] for row in csv.DictReader(handle)]
    skipped = {line.split(": ", 1)[0].removeprefix("skipped "): line.split(": ", 1)[1]
               for line in stderr.splitlines() if line.startswith("skipped ")}
    assert len(predicted) == len(set(predicted)), "a file was predicted twice (a folder link followed again?)"
    for item in made:
        name, listed = relative(item.path, folder), printable(str(item.path))
        if item.expect == GOOD:
            assert name in predicted, f"good file lost: {name}"
        elif item.expect == BAD:
            assert skipped.get(listed), f"bad file not listed with a reason: {name} ({item.kind})"
        else:
            assert (name in predicted) != (listed in skipped), f"{name} neither predicted nor listed, or both"
    peak_mb = int(stderr.split("PEAK_RSS_KB ")[1].split()[0]) / 1024
    assert peak_mb < PREDICT_PEAK_RSS_MB, peak_mb
    log = (tmp_path / "log" / "radlens.log").read_text(encoding="utf-8")
    assert log.count("Skipped ") == len(skipped) and "DOE^JANE" not in log and "PID-4711" not in log


def test_the_window_shows_every_good_file_and_lists_every_bad_one(qtbot, main_window, bad_folder):
    folder, made = bad_folder
    main_window.open_paths([folder])
    qtbot.waitUntil(lambda: not main_window.session.reading, timeout=60000)
    shown = set()
    for row in range(main_window.study_list.count()):
        main_window.study_list.setCurrentRow(row)
        qtbot.waitUntil(lambda: not main_window.loader.busy and main_window.session.is_fully_painted,
                        timeout=20000)
        shown |= {v.state.image.info.path for v in main_window.study_view.viewports if v.state is not None}
    listed = {p.path: p.reason for p in main_window.session.problems}
    texts = [main_window.problem_list.item(i).text() for i in range(main_window.problem_list.count())]
    for item in made:
        if item.expect == GOOD:
            assert item.path in shown, f"good file not shown: {item.path.name}"
        elif item.expect == BAD:
            assert listed.get(item.path), f"bad file not listed: {item.path.name} ({item.kind})"
            assert f"{printable(item.path.name)}: {listed[item.path]}" in texts
        else:
            assert (item.path in shown) != (item.path in listed), item.path.name


def test_predictions_csv_and_masks_name_a_non_utf8_file_escaped(tmp_path):
    import numpy as np

    from app.commands.predict import predict_folder
    from app.inference.registry import ModelRegistry
    from tests.bad_inputs import _odd_name, _png

    make_package(tmp_path / "models", "toy-seg", task="segmentation")
    source = tmp_path / "in"
    source.mkdir()
    _png(_odd_name(source, b"scan-\xff.png"), np.zeros((20, 30), np.uint8))
    _png(source / "plain.png", np.zeros((20, 30), np.uint8))
    report = predict_folder(source, tmp_path / "out", model_name="toy-seg", device="cpu", visualizations=False,
                            registry=ModelRegistry.discover([tmp_path / "models"]))
    assert report.predicted == 2 and not report.problems
    with open(tmp_path / "out" / "predictions.csv", newline="", encoding="utf-8") as handle:
        assert sorted(row["image"] for row in csv.DictReader(handle)) == ["plain.png", "scan-\\xff.png"]
    assert (tmp_path / "out" / "masks" / "scan-\\xff.png").is_file()


def test_no_file_holds_the_scan_or_its_decoding_longer_than_the_per_file_limit(bad_folder):
    from app.io.limits import PER_FILE_SECONDS
    from tests.bad_inputs import slowest_file

    folder, _ = bad_folder
    read_s, read_name, decode_s, decode_name = slowest_file(folder)
    assert read_s < PER_FILE_SECONDS, f"reading {read_name} took {read_s:.1f} s"
    assert decode_s < PER_FILE_SECONDS, f"decoding {decode_name} took {decode_s:.1f} s"


def test_a_screenshot_of_the_bad_folder_ends_promptly_without_a_traceback(bad_folder, tmp_path):
    folder, _ = bad_folder
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config")}
    done = subprocess.run([sys.executable, "-c", MEASURED_RUN, "open", str(folder), "--screenshot",
                           str(tmp_path / "shot.png")], cwd=ROOT, env=env, capture_output=True, timeout=120)
    stderr = done.stderr.decode("utf-8", "backslashreplace")
    assert done.returncode == 0 and "Traceback" not in stderr and (tmp_path / "shot.png").is_file(), stderr[-2000:]
