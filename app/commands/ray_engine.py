"""`radlens predict --engine ray`: the local engine's run on Ray Data, on this machine or a cluster.

The only module that imports Ray (an import-linter contract keeps it so; installers leave it out).
Files are listed here; headers are read by Ray tasks and grouped here into the same images, in the same
order, as the local engine; then a streaming Ray Data pipeline decodes each image in a task and hands it
to an actor pool where each actor holds its models once and runs predict.predict_decoded, the one
per-image path, which writes the mask and picture. Each finished image's record comes back to this
process and goes into the journal at once (journal.py: a stopped run resumes), and predictions.csv
(plus predictions.parquet) is assembled from the journal at the end, as the local engine does.

Memory: Ray Data's backpressure keeps the decoded images waiting between the stages under `memory_mb` of
object store (default 64 MB per actor, at least 512 MB); besides that each decoding task (at most one per
CPU of the cluster, at least two) holds one image, and each actor one image and its models (docs/scale.md).
"""

from __future__ import annotations

# app.commands.predict (and torch with it) is imported where it is used: the tasks that read headers
# and decode import this module, and stay light without it.
import logging
import os
import pickle
from pathlib import Path

import numpy as np
import ray
import ray.data
from ray.data import ActorPoolStrategy, ExecutionResources
from ray.data.context import DataContext

import app
from app.commands.journal import ImageRecord
from app.core.study import group_into_studies
from app.io.errors import LoadProblem, StudyLoadError
from app.io.study_loader import ScanResult, collect_files, decode_series, read_info

log = logging.getLogger("radlens.predict")
MEMORY_MB_PER_ACTOR, MIN_MEMORY_MB = 64, 512  # decoded images queued for the actors (four 16-bit views each)
DEFAULT_GPU_SHARE = 0.25
# Logical CPU shares: one actor per core still leaves a quarter core per actor for decoding tasks.
ACTOR_CPUS, DECODE_CPUS = 0.75, 0.25
HEADER_BATCH = 64


def predict_folder_ray(source: Path, out: Path, *, model_name: str | None = None, device: str = "auto",
                       visualizations: bool = True, registry=None, show_progress: bool = False,
                       exam_list: Path | None = None, address: str | None = None, workers: int | None = None,
                       gpus_per_actor: float | None = None, memory_mb: int | None = None,
                       within: list[Path] | None = None, keep_earlier: bool = False):
    """predict.predict_folder's run on Ray: the same predictions.csv, masks and pictures, plus
    predictions.parquet. Joins the Ray at `address`, else one already started in this process, else
    starts one on this machine for the run (and stops it after). A Ray started by the caller must run this
    code in its workers (`ray.init(runtime_env=worker_code())`). `within` and `keep_earlier` as in
    predict_folder. Returns predict.BatchReport."""
    from app.commands.predict import finish_run, plan_run, run_progress

    started_here = not ray.is_initialized()
    if started_here:
        # Ray's notice that a cluster it starts uses its default, token authentication, is for Ray's users,
        # not for a reader's archive run: kept out of the terminal (the setting itself is Ray's default).
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        ray.init(address=address, include_dashboard=False, configure_logging=False, log_to_driver=False,
                 runtime_env=worker_code())
    try:
        gpus = _gpu_share(device, gpus_per_actor)
        actors = workers or _default_workers(gpus)
        _quiet_ray_data(memory_mb or max(MIN_MEMORY_MB, MEMORY_MB_PER_ACTOR * actors))
        plan = plan_run(source, out, _scan(within or [source]), model_name=model_name, registry=registry,
                        visualizations=visualizations, exam_list=exam_list, keep_earlier=keep_earlier)
        with run_progress(plan, show_progress) as progress:
            if plan.todo:
                for row in _pipeline(plan.job, plan.todo, device, gpus, actors).iter_rows():
                    record = ImageRecord.from_json(row["record"])
                    plan.journal.add(record)
                    progress(record)
        lost = [(key, item) for key, item in plan.todo if key not in plan.journal.records]
        report = finish_run(plan)
        report.problems += [LoadProblem(item.first.path, "its Ray worker failed (see the Ray logs); "
                                                         "run again to retry it") for _key, item in lost]
        write_parquet(out / "predictions.csv", out / "predictions.parquet")
        return report
    finally:
        if started_here:
            ray.shutdown()


def _pipeline(job, todo, device: str, gpus: float, actors: int) -> ray.data.Dataset:
    items = [{"key": key, "series": pickle.dumps(item)} for key, item in todo]
    # Small runs: an image per block, so every actor gets work; an archive: blocks of up to 16 images, so the
    # driver does not track one object per image (a decoding task hands on its output in blocks of at most
    # Ray Data's target block size, 128 MB, so a block of 16-bit mammograms is not held whole).
    dataset = ray.data.from_items(items, override_num_blocks=min(len(items), max(256, len(items) // 16)))
    decoded = dataset.map(_decode, num_cpus=DECODE_CPUS, concurrency=max(2, actors, _cluster_cpus()))
    return decoded.map_batches(
        _Predictor, batch_size=1, num_cpus=ACTOR_CPUS, num_gpus=gpus,
        compute=ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=1),
        fn_constructor_kwargs={"job": job, "device": device if gpus else "cpu"})


def _decode(row: dict) -> dict:
    """A Ray task: one image's pixels (decoding is the loaders', as in the local engine)."""
    image, problems = decode_series(pickle.loads(row["series"]))
    return {"key": row["key"], "series": row["series"],
            "image": pickle.dumps(image, protocol=5) if image is not None else b"", "problems": pickle.dumps(problems)}


class _Predictor:
    """A Ray actor: its models loaded once (the inference engine keeps them), images read one at a time."""

    def __init__(self, job, device: str) -> None:
        import torch

        from app.inference.runner import InferenceEngine

        torch.set_num_threads(max(1, round(ACTOR_CPUS)))
        self.job = job
        self.engine = InferenceEngine(device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        from app.commands.predict import predict_decoded

        records = []
        for key, series, image, problems in zip(batch["key"], batch["series"], batch["image"], batch["problems"]):
            record = predict_decoded(self.engine, self.job, str(key), pickle.loads(series),
                                     pickle.loads(image) if len(image) else None, pickle.loads(problems))
            records.append(record.to_json())
        return {"record": records}


def _scan(paths: list[Path]) -> ScanResult:
    """study_loader.scan with the headers read by Ray tasks: the same images, grouped and ordered the same."""
    files, problems = collect_files(paths)
    if not files:
        return ScanResult([], problems)
    batches = [[os.fsencode(p) for p in files[i:i + HEADER_BATCH]] for i in range(0, len(files), HEADER_BATCH)]
    found = [entry for batch in ray.get([_read_headers.remote(batch) for batch in batches]) for entry in batch]
    problems += [problem for _info, problem in found if problem is not None]
    return ScanResult(group_into_studies([info for info, _problem in found if info is not None]), problems)


@ray.remote(num_cpus=DECODE_CPUS)
def _read_headers(paths: list[bytes]) -> list[tuple[object, LoadProblem | None]]:
    """A Ray task: the headers of a batch of files, in order, each an ImageInfo or the reason it failed."""
    found = []
    for raw in paths:
        try:
            found.append((read_info(Path(os.fsdecode(raw))), None))
        except StudyLoadError as error:
            found.append((None, LoadProblem.from_error(error)))
    return found


def write_parquet(csv_path: Path, parquet_path: Path) -> None:
    """predictions.csv's rows as Parquet, numbers typed; names (image, image_index, model) stay text."""
    import pyarrow.csv
    import pyarrow.parquet

    text = {name: pyarrow.string() for name in ("image", "image_index", "model", "out_of_distribution")}
    table = pyarrow.csv.read_csv(csv_path, convert_options=pyarrow.csv.ConvertOptions(column_types=text))
    pyarrow.parquet.write_table(table, parquet_path)


def worker_code() -> dict:
    """The runtime environment under which Ray's workers run this process's RadLens code (Ray ships the
    package: a cluster's nodes need only the dependencies and the model folders at the same paths)."""
    return {"py_modules": [str(Path(app.__file__).parent)]}


def _gpu_share(device: str, asked: float | None) -> float:
    if asked is not None:
        return asked
    if device == "cpu" or not ray.cluster_resources().get("GPU", 0):
        return 0.0
    return DEFAULT_GPU_SHARE


def _cluster_cpus() -> int:
    return int(ray.cluster_resources().get("CPU", 1))


def _default_workers(gpus: float) -> int:
    by_cpu = max(1, int(_cluster_cpus() / (ACTOR_CPUS + DECODE_CPUS)))
    return min(by_cpu, max(1, int(ray.cluster_resources().get("GPU", 0) / gpus))) if gpus else by_cpu


def _quiet_ray_data(memory_mb: int) -> None:
    """Our progress report replaces Ray Data's bars; the object store bound gives backpressure; a block whose
    worker died costs its image only (it is listed, and retried by the next run)."""
    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.enable_auto_log_stats = False
    context.max_errored_blocks = -1
    context.execution_options.resource_limits = ExecutionResources(object_store_memory=memory_mb * 2**20)
    context.execution_options.preserve_order = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
