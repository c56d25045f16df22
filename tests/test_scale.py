"""Re-reading archives: `predict --engine ray` gives the local engine's outputs, runs resume, progress suits logs."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.commands.journal import JOURNAL_NAME
from app.commands.predict import predict_folder
from app.core.progress import ProgressReport
from app.inference.registry import ModelRegistry
from tests.dicom_factory import write_dicom
from tests.model_factory import make_glam_package, make_package

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ray_session():
    """One small Ray for this module's tests (2 CPUs, no dashboard), running this checkout's code."""
    ray = pytest.importorskip("ray")
    from app.commands.ray_engine import worker_code

    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False,
             runtime_env=worker_code())
    yield ray
    ray.shutdown()


def mixed_folder(root: Path) -> tuple[Path, ModelRegistry]:
    """US images to a classifier, an MR stack of three slices to a segmenter, a PNG no model claims,
    a broken file, a file whose name is not UTF-8."""
    make_package(root / "models", "toy-cls", modality="US")
    make_package(root / "models", "toy-seg", task="segmentation", modality="MR")
    source = root / "in"
    rng = np.random.default_rng(0)
    for name in ("us-1.dcm", "deep/us-2.dcm"):
        write_dicom(source / name, rng.integers(0, 255, (50, 70), np.uint8), Modality="US")
    for slice_number in range(3):
        write_dicom(source / "mr" / f"slice-{slice_number}.dcm", rng.integers(0, 4000, (40, 40), np.uint16),
                    Modality="MR", StudyInstanceUID="1.2.3", SeriesInstanceUID="1.2.3.4",
                    InstanceNumber=slice_number + 1)
    cv2.imwrite(str(source / "photo.png"), rng.integers(0, 255, (30, 30), np.uint8))
    (source / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00" * 9)
    return source, ModelRegistry.discover([root / "models"])


def outputs(folder: Path) -> dict[str, bytes]:
    """Every output file by name, the journal and the Parquet copy left out."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in (JOURNAL_NAME, "predictions.parquet")}


def reasons(report) -> list[tuple[str, str]]:
    return sorted((p.path.name, p.reason) for p in report.problems)


# ---- the Ray engine ----------------------------------------------------------------------------------
def test_ray_and_local_engines_write_identical_outputs(ray_session, tmp_path):
    from app.commands.ray_engine import predict_folder_ray

    source, registry = mixed_folder(tmp_path)
    local = predict_folder(source, tmp_path / "local", device="cpu", registry=registry)
    on_ray = predict_folder_ray(source, tmp_path / "ray", device="cpu", registry=registry)
    expected = outputs(tmp_path / "local")
    assert {"masks/mr/slice-0.png", "visualizations/us-1.dcm".replace(".dcm", ".png")} <= set(expected)
    assert outputs(tmp_path / "ray") == expected
    assert (on_ray.predicted, on_ray.images, reasons(on_ray)) == (local.predicted, local.images, reasons(local))
    assert local.predicted == 3 and {name for name, _ in reasons(local)} == {"photo.png", "broken.dcm"}
    import pyarrow.parquet

    table = pyarrow.parquet.read_table(tmp_path / "ray" / "predictions.parquet").to_pylist()
    rows = list(csv.DictReader((tmp_path / "ray" / "predictions.csv").open(encoding="utf-8")))
    assert [r["image"] for r in table] == [r["image"] for r in rows]
    assert [round(r["p_lesion"] or -1, 6) for r in table] == [float(r["p_lesion"] or -1) for r in rows]


def test_ray_writes_glams_csv_like_the_local_engine(ray_session, tmp_path):
    from app.commands.ray_engine import predict_folder_ray
    from tests.test_glam_app import write_exam

    make_glam_package(tmp_path / "models", "toy-glam", modality=["MG", "OT"])
    registry = ModelRegistry.discover([tmp_path / "models"])
    source = write_exam(tmp_path / "in")
    predict_folder(source, tmp_path / "local", model_name="toy-glam", device="cpu", registry=registry)
    predict_folder_ray(source, tmp_path / "ray", model_name="toy-glam", device="cpu", registry=registry)
    assert outputs(tmp_path / "ray") == outputs(tmp_path / "local")
    header = (tmp_path / "ray" / "predictions.csv").read_text().splitlines()[0]
    assert header == "image_index,benign_pred,malignant_pred,patch_x,patch_y,patch_w,patch_h"


# ---- resuming ----------------------------------------------------------------------------------------
def slow_folder(root: Path, count: int) -> Path:
    """`count` images large enough (900 x 900) that a run takes a few seconds."""
    make_package(root / "models", "toy-seg", task="segmentation")
    source = root / "in"
    source.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for index in range(count):
        cv2.imwrite(str(source / f"{index:03d}.png"), rng.integers(0, 255, (900, 900), np.uint8))
    return source


def finished_lines(out: Path) -> int:
    journal = out / JOURNAL_NAME
    return max(0, len(journal.read_text().splitlines()) - 1) if journal.is_file() else 0


def kill_half_way(command: list[str], out: Path, total: int, env: dict) -> int:
    """Start `command`, SIGKILL its process group once some but not all images are finished; how many were."""
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 240
    try:
        while finished_lines(out) < 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    done = finished_lines(out)
    assert 0 < done < total, f"the run was not stopped half way ({done} of {total} finished)"
    return done


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_a_killed_run_restarts_where_it_was(engine, tmp_path):
    if engine == "ray":
        pytest.importorskip("ray")
    total = 16
    source = slow_folder(tmp_path, total)
    env = {**os.environ, "RADLENS_MODEL_PATH": str(tmp_path / "models"), "QT_QPA_PLATFORM": "offscreen"}
    command = [sys.executable, "-m", "app", "predict", str(source), str(tmp_path / "out"), "--model", "toy-seg",
               "--device", "cpu", "--engine", engine]
    killed_after = kill_half_way(command, tmp_path / "out", total, env)
    again = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "Token authentication" not in again.stderr  # Ray's notices for its own users stay out of the terminal
    resumed = int(re.search(r"\((\d+) by an earlier run\)", again.stdout).group(1))
    assert resumed >= killed_after, again.stdout  # finished images were not read again
    whole = predict_folder(source, tmp_path / "whole", model_name="toy-seg", device="cpu",
                           registry=ModelRegistry.discover([tmp_path / "models"]))
    assert whole.predicted == total and outputs(tmp_path / "out") == outputs(tmp_path / "whole")


def test_a_changed_file_or_other_settings_are_read_again(tmp_path):
    source, registry = mixed_folder(tmp_path)
    first = predict_folder(source, tmp_path / "out", device="cpu", registry=registry, visualizations=False)
    assert first.resumed == 0
    write_dicom(source / "us-1.dcm", np.full((50, 70), 7, np.uint8), Modality="US")
    again = predict_folder(source, tmp_path / "out", device="cpu", registry=registry, visualizations=False)
    assert again.resumed == again.images - 1 and again.predicted == first.predicted
    assert reasons(again) == reasons(first)  # failed files are listed again, from the journal
    pictures = predict_folder(source, tmp_path / "out", device="cpu", registry=registry, visualizations=True)
    assert pictures.resumed == 0 and (tmp_path / "out" / "visualizations" / "us-1.png").is_file()


# ---- progress ----------------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_in_a_log_is_a_plain_line_every_few_percent_or_minute():
    stream, clock = io.StringIO(), Clock()
    with ProgressReport(394, stream=stream, clock=clock) as progress:
        for done in range(1, 395):
            clock.now += 0.5
            progress.update(done, failed=done // 100)
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and 20 <= len(lines) <= 21, lines
    assert lines[0] == "images: 19/394 (5%), 2.00 images/s, 03:07 left, 0 failed"
    assert lines[-1] == "images: 394/394 (100%), 2.00 images/s, 03:17 elapsed, 3 failed"
    slow, clock = io.StringIO(), Clock()
    with ProgressReport(100_000, initial=40_000, stream=slow, clock=clock) as progress:
        for done in range(40_001, 40_011):
            clock.now += 30
            progress.update(done)
    assert slow.getvalue().splitlines()[0].startswith("images: 40002/100000 (40%), 40000 from the earlier run,")
    assert len(slow.getvalue().splitlines()) == 5  # one a minute (the last update was one of them)


def test_the_desktop_app_and_the_local_engine_never_load_ray(tmp_path):
    code = ("import sys; import app.cli, app.commands.predict, app.ui.main_window; "
            "sys.exit(1 if {'ray', 'pyarrow'} & set(m.split('.')[0] for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"}
                          ).returncode == 0


# ---- studies from a PACS, a batch at a time --------------------------------------------------------
def _studies_in_pacs(orthanc, root: Path) -> tuple[list[str], ModelRegistry]:
    make_package(root / "models", "toy-cls", modality="US")
    rng = np.random.default_rng(1)
    uids = []
    for number in range(3):
        uid = f"1.2.826.0.1.3680043.10.999.{number + 1}"
        path = write_dicom(root / "pacs-source" / f"us-{number}.dcm", rng.integers(0, 255, (40, 60), np.uint8),
                           Modality="US", StudyInstanceUID=uid, PatientID=f"BATCH-{number}")
        orthanc.upload(path)
        uids.append(uid)
    return uids, ModelRegistry.discover([root / "models"])


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_studies_from_the_pacs_are_fetched_and_read_a_batch_at_a_time_and_a_rerun_resumes(engine, orthanc, tmp_path,
                                                                                          request):
    import functools

    from app.commands.pacs_batches import predict_studies, read_study_uids
    from tests.test_pacs import settings_for

    uids, registry = _studies_in_pacs(orthanc, tmp_path)
    listing = tmp_path / "uids.txt"
    listing.write_text("# re-read\n" + "\n".join(uids) + "\n1.2.3.404\n" + uids[0] + "\n")
    assert read_study_uids(listing) == [*uids, "1.2.3.404"]
    if engine == "ray":
        request.getfixturevalue("ray_session")
        from app.commands.ray_engine import predict_folder_ray as run
    else:
        run = predict_folder
    settings = settings_for(orthanc, tmp_path)
    said = []
    report = predict_studies(read_study_uids(listing), tmp_path / "out", settings,
                             functools.partial(run, device="cpu", registry=registry), batch_size=2, say=said.append)
    assert len(said) == 2 and (report.predicted, report.images, report.resumed) == (3, 3, 0)
    assert [p.path.name for p in report.problems] == ["study 1.2.3.404"]
    with open(tmp_path / "out" / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 and {row["model"] for row in rows} == {"toy-cls"}  # every batch's rows, not the last's
    again = predict_studies(read_study_uids(listing), tmp_path / "out", settings,
                            functools.partial(run, device="cpu", registry=registry), batch_size=2)
    assert (again.predicted, again.resumed) == (3, 3)  # nothing read twice
    evict = tmp_path / "cache" / sorted(p.name for p in (tmp_path / "cache").iterdir() if p.is_dir())[0]
    shutil.rmtree(evict)
    other = predict_studies(read_study_uids(listing), tmp_path / "other-model", settings,
                            functools.partial(run, device="cpu", registry=registry, model_name="toy-cls"))
    assert (other.predicted, other.resumed) == (3, 0)  # another OUTPUT: everything fetched and read
    shutil.copy(tmp_path / "out" / ".radlens-predict.jsonl", tmp_path / "other-model")  # the first run's journal
    shutil.rmtree(evict)
    other = predict_studies(read_study_uids(listing), tmp_path / "other-model", settings,
                            functools.partial(run, device="cpu", registry=registry, model_name="toy-cls"),
                            batch_size=1)
    assert (other.predicted, other.resumed) == (3, 0)  # a journal of other settings: the evicted study fetched again
    shutil.rmtree(evict)
    orthanc.stop()  # the PACS is down: studies read already, one of them evicted since, are not asked for
    evicted = predict_studies(read_study_uids(listing), tmp_path / "out", settings,
                              functools.partial(run, device="cpu", registry=registry), batch_size=2)
    assert evicted.predicted == 3 and [p.path.name for p in evicted.problems] == ["study 1.2.3.404"]


def test_a_uid_list_with_a_bad_line_is_refused_with_its_line(tmp_path):
    from app.commands.pacs_batches import read_study_uids

    listing = tmp_path / "uids.txt"
    listing.write_text("1.2.3\nDOE^JANE\n")
    with pytest.raises(ValueError, match=r"uids.txt:2: 'DOE\^JANE' is not a Study Instance UID"):
        read_study_uids(listing)
