"""Throughput of `radlens predict`: the local engine and Ray (1 and 2 actors) on the same images, same run.

Two sets from ../shared/datasets, read through the shipped models:
  ultrasound  N BUSI images (masks left out) with us-breast-cls, pictures written (predict's default)
  mammograms  the GLAM sample exam's four 16-bit views, copied K times, with mg-glam-lite

For each set and engine: a run on 1 image (start-up: Ray, actors, models) and a run on all of them; the
cost per image is the difference over the extra images, so start-up is separated from the steady rate.
Ray's overhead per image is its 1-actor cost less the local engine's at one torch thread. Stage costs
(header, decode, the pickle that carries a decoded image between Ray's stages, model with outputs) are
measured in this process, one thread, for docs/scale.md. Peak memory: all processes of the run (RSS).
Usage: python benchmarks/batch_scale.py [--images 240] [--exams 6]
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from app.commands.predict import plan_run, predict_decoded, predict_folder  # noqa: E402
from app.commands.ray_engine import predict_folder_ray  # noqa: E402
from app.inference.registry import ModelRegistry  # noqa: E402
from app.inference.runner import InferenceEngine  # noqa: E402
from app.io.study_loader import decode_series, read_info, scan  # noqa: E402

DATA = ROOT.parent / "shared" / "datasets"


class PeakMemory:
    """Highest summed RSS of this process and its descendants (Ray's workers included), sampled 5x a second."""

    def __init__(self) -> None:
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.2):
            total = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()


def ultrasound(folder: Path, count: int) -> Path:
    files = sorted(p for p in (DATA / "busi").rglob("*.png") if "_mask" not in p.name)[:count]
    for path in files:
        (folder / f"{path.parent.name}-{path.name}").symlink_to(path)
    return folder


def mammograms(folder: Path, exams: int) -> Path:
    for exam in range(exams):
        for view in sorted((DATA / "glam_sample" / "images").glob("0_*.png")):
            (folder / view.name.replace("0_", f"{exam}_", 1)).symlink_to(view)
    return folder


def stage_costs(source: Path, model: str, registry: ModelRegistry, sample: int = 20) -> dict[str, float]:
    """Median ms per image of each stage on one thread, and the decoded image's pickled size (MB)."""
    torch.set_num_threads(1)
    plan = plan_run(source, Path(tempfile.mkdtemp(prefix="stages-")), scan([source]), model_name=model,
                    registry=registry, visualizations=True, exam_list=None)
    engine, timings = InferenceEngine("cpu"), {"header": [], "decode": [], "transfer": [], "model": []}
    sizes = []
    for index, (key, item) in enumerate(plan.todo[:sample + 1]):
        started = time.perf_counter()
        read_info(item.first.path)
        header = time.perf_counter()
        image, problems = decode_series(item)
        decoded = time.perf_counter()
        carried = pickle.dumps(image, protocol=5)
        pickle.loads(carried)
        moved = time.perf_counter()
        predict_decoded(engine, plan.job, key, item, image, problems)
        done = time.perf_counter()
        if index:  # the first loads the model
            sizes.append(len(carried) / 2**20)
            for name, (a, b) in {"header": (started, header), "decode": (header, decoded),
                                 "transfer": (decoded, moved), "model": (moved, done)}.items():
                timings[name].append(1000 * (b - a))
    shutil.rmtree(plan.job.out)
    torch.set_num_threads(os.cpu_count() or 1)
    return {**{k: statistics.median(v) for k, v in timings.items()}, "mb": statistics.median(sizes)}


def timed(run) -> tuple[float, float]:
    with PeakMemory() as memory:
        started = time.perf_counter()
        report = run()
        seconds = time.perf_counter() - started
    assert report.predicted == report.images, report.problems[:3]
    return seconds, memory.peak / 2**30


def engines(source: Path, model: str, registry: ModelRegistry, work: Path) -> dict[str, dict[str, float]]:
    one = work / "one"
    one.mkdir()
    first = sorted(p for p in source.iterdir())[0]
    (one / first.name).symlink_to(first.resolve())
    count = len(list(source.iterdir()))
    runs = {
        "local, 2 torch threads": lambda src, out: predict_folder(src, out, model_name=model, device="cpu",
                                                                  registry=registry),
        "local, 1 torch thread": lambda src, out: predict_folder(src, out, model_name=model, device="cpu",
                                                                 registry=registry),
        "ray, 1 actor": lambda src, out: predict_folder_ray(src, out, model_name=model, device="cpu",
                                                          registry=registry, workers=1),
        "ray, 2 actors": lambda src, out: predict_folder_ray(src, out, model_name=model, device="cpu",
                                                           registry=registry, workers=2),
    }
    results = {}
    for name, run in runs.items():
        torch.set_num_threads(1 if "1 torch thread" in name else os.cpu_count() or 1)
        tag = name.replace(", ", "-").replace(" ", "")
        single, _ = timed(lambda: run(one, work / f"{tag}-one"))
        whole, peak = timed(lambda: run(source, work / f"{tag}-all"))
        per_image = (whole - single) / (count - 1)
        results[name] = {"start": single - per_image, "per_image_ms": 1000 * per_image, "rate": 1 / per_image,
                         "whole": whole, "peak_gb": peak}
        print(f"  {name:24s} {count} images in {whole:6.1f} s; start-up {single - per_image:5.1f} s, "
              f"{1000 * per_image:6.0f} ms/image = {1 / per_image:5.2f} images/s, peak {peak:.2f} GB", flush=True)
    torch.set_num_threads(os.cpu_count() or 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--exams", type=int, default=6)
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} is not present")
    registry = ModelRegistry.discover()
    load = Path("/proc/loadavg").read_text().split()[0]
    print(f"{os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB, torch {torch.__version__}, "
          f"load {load} at the start", flush=True)
    with tempfile.TemporaryDirectory(prefix="batch-scale-") as temp:
        work = Path(temp)
        sets = {"ultrasound": (ultrasound, args.images, "us-breast-cls"),
                "mammograms": (mammograms, args.exams, "mg-glam-lite")}
        for name, (make, count, model) in sets.items():
            source = work / name / "in"
            source.mkdir(parents=True)
            make(source, count)
            stages = stage_costs(source, model, registry)
            print(f"{name} ({model}, {len(list(source.iterdir()))} images): stage costs on one thread, ms/image: "
                  + ", ".join(f"{k} {v:.1f}" for k, v in stages.items() if k != "mb")
                  + f"; decoded image {stages['mb']:.1f} MB", flush=True)
            results = engines(source, model, registry, work / name)
            overhead = results["ray, 1 actor"]["per_image_ms"] - results["local, 1 torch thread"]["per_image_ms"]
            one_thread = stages["decode"] + stages["model"] + stages["transfer"]
            print(f"  Ray's overhead per image (1 actor less local at 1 thread): {overhead:.0f} ms; "
                  f"2 actors on 2 cores, predicted from the stage costs: {2000 / (one_thread + max(overhead, 0)):.2f} "
                  f"images/s, measured {results['ray, 2 actors']['rate']:.2f}", flush=True)
    print(f"load {Path('/proc/loadavg').read_text().split()[0]} at the end")


if __name__ == "__main__":
    main()
