"""Robustness over seeded folders of damaged and hostile files (tests/bad_inputs.py), mixed with good ones.

    .venv/bin/python benchmarks/bad_inputs.py [--seeds 3] [--scale 3]

For each seed it writes a folder (about 270 x scale files, 21 of them good) and runs, each in its own
process: `radlens predict` with a small random-weight classifier, and `radlens open --screenshot`
(the window's scan of every file, then its first study drawn). It counts files tried, crashes
(a traceback or a signal), hangs (no exit within the time-out), good files lost, bad files not
listed, and the peak resident memory of each process; then it times, in this process, the slowest
single file to read (header) and to decode, against the per-file limit.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.core.text import printable  # noqa: E402
from app.io.limits import PER_FILE_SECONDS, PIXEL_BUDGET  # noqa: E402
from tests.bad_inputs import BAD, GOOD, slowest_file, write_bad_inputs  # noqa: E402
from tests.model_factory import make_package  # noqa: E402

TIMEOUT_S = 600
MEASURED = ("import resource, sys; from app.cli import main; from app.crash_log import start_logging; "
            "start_logging(); code = main(sys.argv[1:]); "
            "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); "
            "sys.exit(code)")


def run(args: list[str], env: dict[str, str]) -> tuple[str, float, float | None, bool]:
    """(stderr, seconds, peak RSS MiB, hung) of one measured `radlens` process."""
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-c", MEASURED, *args], cwd=ROOT, env=env, capture_output=True,
                              timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return "", TIMEOUT_S, None, True
    stderr = done.stderr.decode("utf-8", "backslashreplace")
    peak = int(stderr.split("PEAK_RSS_KB ")[1].split()[0]) / 1024 if "PEAK_RSS_KB" in stderr else None
    crashed = done.returncode < 0 or "Traceback" in stderr
    return ("CRASH " if crashed else "") + stderr, time.perf_counter() - started, peak, False


def one_seed(seed: int, scale: int, work: Path, models: Path) -> dict[str, object]:
    folder = work / f"seed-{seed}"
    made = write_bad_inputs(folder, seed=seed, scale=scale)
    env = {**os.environ, "RADLENS_MODEL_PATH": str(models), "QT_QPA_PLATFORM": "offscreen",
           "RADLENS_LOG_DIR": str(work / "log"), "XDG_CONFIG_HOME": str(work / "config")}
    out = work / f"out-{seed}"
    stderr, predict_s, predict_mb, predict_hung = run(
        ["predict", str(folder), str(out), "--model", "toy-cls", "--device", "cpu", "--no-visualizations"], env)
    predicted = set()
    if (out / "predictions.csv").is_file():
        with open(out / "predictions.csv", newline="", encoding="utf-8") as handle:
            predicted = {row["image"] for row in csv.DictReader(handle)}
    listed = {line.split(": ", 1)[0].removeprefix("skipped ") for line in stderr.splitlines()
              if line.startswith("skipped ")}
    names = {m: printable(m.path.relative_to(folder).as_posix()) for m in made}
    window_err, window_s, window_mb, window_hung = run(["open", str(folder), "--screenshot", str(work / "s.png")],
                                                       env)
    read_s, read_name, decode_s, decode_name = slowest_file(folder)
    read_name, decode_name = printable(read_name), printable(decode_name)
    return {
        "seed": seed, "files": len(made), "good": sum(m.expect == GOOD for m in made),
        "crashes": int(stderr.startswith("CRASH")) + int(window_err.startswith("CRASH")),
        "hangs": int(predict_hung) + int(window_hung),
        "good lost": sum(m.expect == GOOD and names[m] not in predicted for m in made),
        "bad unlisted": sum(m.expect == BAD and printable(str(m.path)) not in listed for m in made),
        "predict s": predict_s, "predict MiB": predict_mb, "window s": window_s, "window MiB": window_mb,
        "slowest read": f"{read_s * 1000:.0f} ms ({read_name})",
        "slowest decode": f"{decode_s * 1000:.0f} ms ({decode_name})",
    }


def budget_edge(work: Path, models: Path) -> str:
    """What the budget still lets through: files declaring 20000 x 20000 (exactly the budget) with
    tiny pixel data, through `predict`; the time and memory of the worst file a budget admits."""
    import numpy as np
    from pydicom.uid import RLELossless

    from tests.bad_inputs import _jpeg_declaring, _saved, dicom_dataset, jpeg_dicom_bytes

    folder = work / "edge"
    folder.mkdir()
    small = np.zeros((32, 32), np.uint8)
    side = int(PIXEL_BUDGET ** 0.5)
    (folder / "jpeg.dcm").write_bytes(jpeg_dicom_bytes(small, jpeg=_jpeg_declaring(small, side, side), Rows=side,
                                                       Columns=side))
    (folder / "rle.dcm").write_bytes(_saved(dicom_dataset(small, RLELossless, Rows=side, Columns=side)))
    env = {**os.environ, "RADLENS_MODEL_PATH": str(models), "RADLENS_LOG_DIR": str(work / "log")}
    stderr, seconds, peak, hung = run(["predict", str(folder), str(work / "edge-out"), "--model", "toy-cls",
                                       "--device", "cpu", "--no-visualizations"], env)
    reasons = "; ".join(line.split(": ", 1)[1] for line in stderr.splitlines() if line.startswith("skipped "))
    return (f"budget edge ({side} x {side} declared, JPEG and RLE DICOM): {seconds:.1f} s, peak "
            f"{peak or 0:.0f} MiB, hung: {hung}, crashed: {stderr.startswith('CRASH')}; {reasons}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--scale", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="radlens-bad-inputs-") as tmp:
        work = Path(tmp)
        make_package(work / "models", "toy-cls")
        rows = [one_seed(seed, args.scale, work, work / "models") for seed in range(args.seeds)]
        edge = budget_edge(work, work / "models")
    columns = list(rows[0])
    print(f"pixel budget {PIXEL_BUDGET:,} values; per-file limit {PER_FILE_SECONDS} s")
    print("| " + " | ".join(columns) + " |")
    print("| " + " | ".join("---" for _ in columns) + " |")
    for row in rows:
        print("| " + " | ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in row.values()) + " |")
    print(edge)


if __name__ == "__main__":
    main()
