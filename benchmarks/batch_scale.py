"""Throughput of `radlens predict`: the local engine and Ray (1 and 2 actors) on the same images, same run.

Two sets from ../shared/datasets, read through the shipped models:
  ultrasound  N BUSI images (masks left out) with us-breast-cls, pictures written (predict's default)
  mammograms  the GLAM sample exam's four 16-bit views, copied K times, with mg-glam-lite

For each set and engine: start-up (Ray, actors, models: until the first image is done), then the steady
cost per image (first to last image done): wall time, and CPU seconds of every process of the run (this
one and Ray's), which is what sizes a cluster. Ray's overhead per image is its 1-actor CPU cost less the
local engine's at one torch thread. Stage costs
(header, decode, the pickle that carries a decoded image between Ray's stages, model with outputs) are
measured in this process, one thread, for docs/scale.md. Peak memory: all processes of the run (summed RSS).
A third set, backpressure: the object store held by decoded full-field views at three --memory-mb.
Usage: python benchmarks/batch_scale.py [--images 240] [--exams 15] [--sets ultrasound,mammograms,backpressure]
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
from app.commands.journal import Journal  # noqa: E402
from app.commands.predict import plan_run, predict_decoded, predict_folder  # noqa: E402
from app.commands.ray_engine import predict_folder_ray  # noqa: E402
from app.inference.registry import ModelRegistry  # noqa: E402
from app.inference.runner import InferenceEngine  # noqa: E402
from app.io.study_loader import decode_series, read_info, scan  # noqa: E402

DATA = ROOT.parent / "shared" / "datasets"


class Watch:
    """The run's processes (this one and its descendants: Ray's included): peak memory (summed RSS, an upper
    bound: libraries shared by Ray's workers count once per process), sampled twice a second, and CPU
    seconds when each image is journalled. Not PSS: reading smaps while torch runs on two threads made the
    local engine 10x slower here (it holds the address-space lock that the threads' page faults wait for)."""

    def __init__(self) -> None:
        self.peak, self.stamps, self.cpu = 0, [], []
        self._cpu_by_pid: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._add = Journal.add

    def processes(self) -> list[psutil.Process]:
        me = psutil.Process()
        return [me, *me.children(recursive=True)]

    def cpu_seconds(self) -> float:
        for process in self.processes():
            try:
                times = process.cpu_times()
                self._cpu_by_pid[process.pid] = times.user + times.system
            except psutil.Error:
                pass
        return sum(self._cpu_by_pid.values())

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            total = 0
            for process in self.processes():
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)

    def __enter__(self) -> Watch:
        watch = self

        def add(journal, record):
            watch._add(journal, record)
            watch.stamps.append(time.perf_counter())
            watch.cpu.append(watch.cpu_seconds())

        Journal.add = add
        self.started, self.cpu_at_start = time.perf_counter(), self.cpu_seconds()
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        Journal.add = self._add
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


def engines(source: Path, model: str, registry: ModelRegistry, work: Path) -> dict[str, dict[str, float]]:
    """Each engine on all images: start-up (to the first image done), then the steady cost per image from
    the first to the last image done: wall time, and CPU seconds of all the run's processes."""
    runs = {
        "local, 2 torch threads": lambda out: predict_folder(source, out, model_name=model, device="cpu",
                                                             registry=registry),
        "local, 1 torch thread": lambda out: predict_folder(source, out, model_name=model, device="cpu",
                                                            registry=registry),
        "ray, 1 actor": lambda out: predict_folder_ray(source, out, model_name=model, device="cpu",
                                                       registry=registry, workers=1),
        "ray, 2 actors": lambda out: predict_folder_ray(source, out, model_name=model, device="cpu",
                                                        registry=registry, workers=2),
    }
    results = {}
    for name, run in runs.items():
        torch.set_num_threads(1 if "1 torch thread" in name else os.cpu_count() or 1)
        with Watch() as watch:
            report = run(work / name.replace(", ", "-").replace(" ", ""))
            whole = time.perf_counter() - watch.started
        assert report.predicted == report.images, report.problems[:3]
        steady = len(watch.stamps) - 1
        per_image = (watch.stamps[-1] - watch.stamps[0]) / steady
        cpu = (watch.cpu[-1] - watch.cpu[0]) / steady
        results[name] = {"start": watch.stamps[0] - watch.started, "per_image_ms": 1000 * per_image,
                         "rate": 1 / per_image, "cpu_ms": 1000 * cpu, "peak_gb": watch.peak / 2**30}
        print(f"  {name:24s} {report.images} images in {whole:6.1f} s; start-up {results[name]['start']:5.1f} s, "
              f"then {1000 * per_image:4.0f} ms/image = {1 / per_image:5.2f} images/s, {1000 * cpu:4.0f} CPU-ms/image "
              f"({cpu / per_image:.2f} cores busy), peak {watch.peak / 2**30:.2f} GB", flush=True)
    torch.set_num_threads(os.cpu_count() or 1)
    return results


def backpressure(work: Path, registry: ModelRegistry, views: int) -> None:
    """Object store held by decoded full-field 16-bit views (3328 x 2560) while 2 actors read them with
    mg-glam-lite: bounded by --memory-mb, not by the number of images."""
    import cv2
    import ray

    from app.commands.ray_engine import worker_code

    source = work / "full-field"
    source.mkdir(parents=True)
    originals = sorted((DATA / "glam_sample" / "images").glob("0_*.png"))
    for view in originals:
        big = cv2.resize(cv2.imread(str(view), cv2.IMREAD_UNCHANGED), (2560, 3328), interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(source / view.name), big)
    for exam in range(1, views // 4):
        for view in originals:
            (source / view.name.replace("0_", f"{exam}_", 1)).symlink_to(source / view.name)
    for memory_mb in (64, None, 2048):
        ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False,
                 runtime_env=worker_code())
        total, peak, stop = ray.cluster_resources()["object_store_memory"], [0.0], threading.Event()

        def watch():
            while not stop.wait(0.1):
                peak[0] = max(peak[0], total - ray.available_resources().get("object_store_memory", total))

        watcher = threading.Thread(target=watch)
        watcher.start()
        started = time.perf_counter()
        report = predict_folder_ray(source, work / f"full-field-{memory_mb}", model_name="mg-glam-lite", device="cpu",
                                    registry=registry, workers=2, memory_mb=memory_mb, visualizations=False)
        stop.set()
        watcher.join()
        ray.shutdown()
        print(f"  --memory-mb {memory_mb or 'default'}: {report.predicted} full-field views in "
              f"{time.perf_counter() - started:.0f} s; decoded images in the object store peaked at "
              f"{peak[0] / 2**20:.0f} MB (a view is {2560 * 3328 * 2 / 2**20:.0f} MB)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--exams", type=int, default=15)
    parser.add_argument("--sets", default="ultrasound,mammograms,backpressure", help="which sets, comma-separated")
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
        for name, (make, count, model) in ((k, v) for k, v in sets.items() if k in args.sets.split(",")):
            source = work / name / "in"
            source.mkdir(parents=True)
            make(source, count)
            stages = stage_costs(source, model, registry)
            print(f"{name} ({model}, {len(list(source.iterdir()))} images): stage costs on one thread, ms/image: "
                  + ", ".join(f"{k} {v:.1f}" for k, v in stages.items() if k != "mb")
                  + f"; decoded image {stages['mb']:.1f} MB", flush=True)
            results = engines(source, model, registry, work / name)
            overhead = results["ray, 1 actor"]["cpu_ms"] - results["local, 1 torch thread"]["cpu_ms"]
            busy = results["ray, 2 actors"]["cpu_ms"] / results["ray, 2 actors"]["per_image_ms"]
            print(f"  Ray's overhead per image (CPU-ms, 1 actor less local at 1 thread): {overhead:.0f} ms; "
                  f"2 actors predicted from the 1-actor CPU cost and the {busy:.2f} cores they got: "
                  f"{1000 * busy / results['ray, 1 actor']['cpu_ms']:.2f} images/s, measured "
                  f"{results['ray, 2 actors']['rate']:.2f}", flush=True)
        if "backpressure" in args.sets.split(","):
            print("backpressure (Ray, 2 actors, mg-glam-lite, no pictures):", flush=True)
            backpressure(work, registry, 4 * args.exams)
    print(f"load {Path('/proc/loadavg').read_text().split()[0]} at the end")


if __name__ == "__main__":
    main()
