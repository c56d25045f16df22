"""Find and retrieve a four-view 16-bit MG study from a local Orthanc, against copying the same files from disk.

Run: `.venv/bin/python benchmarks/pacs_retrieve.py` (about a minute on 2 cores; needs Orthanc, which
tests/orthanc.py installs from Debian when it can).

What it does:
1. Writes a synthetic four-view MG study (R CC, L CC, R MLO, L MLO; 3328 x 2560, 12 bits stored in 16,
   uncompressed, noise so nothing is trivially small): 4 x 17 MB.
2. Starts Orthanc (temporary storage, loopback ports, DICOMweb plugin) and stores the study in it.
3. Baseline: `shutil.copy` of the four files into a new folder (the page cache is warm for both).
4. RadLens: C-FIND of the study by patient ID, then `retrieve_study` (IMAGE-level C-GET of each
   instance, written whole then renamed) into a new, empty cache; and the same over DICOMweb
   (QIDO-RS + WADO-RS). Best of REPEATS each.
5. Memory: peak RSS of this process during one C-GET retrieval (VmHWM reset through
   /proc/self/clear_refs) minus the RSS before it, against the study's bytes. Orthanc runs on the same
   cores, so the ratio also says what a PACS on the same machine costs.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHAPE = (3328, 2560)
VIEWS = ("R CC", "L CC", "R MLO", "L MLO")
REPEATS = 3
MB = 1024 * 1024


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def best(action, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    from app.pacs.query import StudyQuery, find_studies
    from app.pacs.retrieve import retrieve_study
    from app.pacs.settings import PacsSettings
    from tests.dicom_factory import mg_study
    from tests.orthanc import OrthancServer, ensure_orthanc, free_port

    reason = ensure_orthanc()
    if reason:
        print(f"cannot run: {reason}")
        return 1
    work = Path(tempfile.mkdtemp(prefix="radlens-pacs-bench-"))
    try:
        files = mg_study(work / "study", size=SHAPE, views=VIEWS, PatientID="BENCH-1", PatientName="BENCH^MARK")
        study_bytes = sum(p.stat().st_size for p in files)
        orthanc = OrthancServer(work / "orthanc", modalities={"RADLENS": ("127.0.0.1", free_port())}).start()
        try:
            orthanc.upload(*files)
            settings = PacsSettings(port=orthanc.dicom_port, called_ae=orthanc.aet, dicomweb_url=orthanc.dicomweb_url,
                                    cache_dir=str(work / "cache"), timeout_s=60.0)
            counter = iter(range(10_000))

            def copy_from_disk() -> None:
                target = work / f"copy{next(counter)}"
                target.mkdir()
                for path in files:
                    shutil.copy(path, target / path.name)

            def find_and_get(web: bool) -> None:
                cache = work / f"cache{next(counter)}"
                run = PacsSettings(**{**settings.__dict__, "cache_dir": str(cache)})
                (match,) = find_studies(run, StudyQuery(patient_id="BENCH-1"), web=web)
                report = retrieve_study(run, match.study_uid, web=web)
                assert report.complete and report.fetched == len(VIEWS), report.summary()

            copy_s = best(copy_from_disk)
            dimse_s = best(lambda: find_and_get(False))
            web_s = best(lambda: find_and_get(True))
            find_s = best(lambda: find_studies(settings, StudyQuery(patient_id="BENCH-1")))

            rss_before = _status("VmRSS")
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
            find_and_get(False)
            peak = _status("VmHWM") - rss_before
        finally:
            orthanc.kill()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    load = os.getloadavg()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"load average {load[0]:.2f}; study {len(VIEWS)} x {SHAPE[0]}x{SHAPE[1]} 16-bit, "
          f"{study_bytes / MB:.1f} MiB; best of {REPEATS}")
    print(f"{'what':44s} {'seconds':>8s} {'x copy':>7s} {'MiB/s':>7s}")
    for label, seconds in (("copy the files from disk (baseline)", copy_s),
                           ("C-FIND + C-GET into an empty cache", dimse_s),
                           ("QIDO-RS + WADO-RS into an empty cache", web_s),
                           ("C-FIND alone", find_s)):
        rate = f"{study_bytes / MB / seconds:7.0f}" if "FIND alone" not in label else "      -"
        print(f"{label:44s} {seconds:8.3f} {seconds / copy_s:7.1f} {rate}")
    print(f"peak memory while retrieving (C-GET): +{peak / MB:.0f} MiB = {peak / study_bytes:.2f} x the study")
    return 0


if __name__ == "__main__":
    sys.exit(main())
