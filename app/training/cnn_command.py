"""`radlens train` for the CNN models (the three classifiers and the ultrasound U-Net): packs, run, package."""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from platformdirs import user_cache_dir

from app.training import pick_device
from app.training.imagepack import ImagePack
from app.training.recipes import PLANS, SEGMENTATION, SEGMENTATION_RECIPE


def _dataset(model: str):
    from app.training.datasets import BUSI

    return BUSI if model == SEGMENTATION else PLANS[model].dataset


def _pack_size(model: str) -> int:
    return SEGMENTATION_RECIPE.size if model == SEGMENTATION else PLANS[model].pack_size


def pack_path(folder: Path, model: str) -> Path:
    return folder / f"{_dataset(model).name}-{_pack_size(model)}.npz"


def make_pack(model: str, folder: Path, limit: int | None = None) -> ImagePack:
    """Decode the data set from ../shared once (or load the pack made before)."""
    path = pack_path(folder, model)
    if path.is_file() and limit is None:
        return ImagePack.load(path)
    from app.core.progress import terminal_progress
    from app.training.datasets import list_samples
    from app.training.imagepack import build_pack

    samples = list_samples(_dataset(model))
    if limit is not None:
        samples = [s for label in sorted({s.label for s in samples})
                   for s in [x for x in samples if x.label == label][:limit]]
    print(f"{model}: decoding {len(samples)} images into {path.name}")
    pack = build_pack(samples, _pack_size(model), with_masks=_dataset(model).name == "busi", progress=terminal_progress)
    # the pack on disk holds JPEG-compressed images: the first run trains on what every later run reads
    return ImagePack.load(pack.save(path)) if limit is None else pack


def train_cnn(args) -> int:
    packs = args.data or Path(user_cache_dir("RadLens", appauthor=False)) / "training" / "packs"
    if args.latency_only:
        from app.training.package import remeasure_latency

        print(f"{args.model}: CPU latency {remeasure_latency(args.out / args.model, _latency_image(args.model))} ms")
        return 0
    if args.from_run is None:
        pack = make_pack(args.model, packs, args.limit)
        if args.pack_only:
            print(f"wrote {pack_path(packs, args.model)}")
            return 0
        runs = args.run_only or Path(tempfile.mkdtemp(prefix="radlens-run-"))
        run_dir = runs / args.model
        _run(args, pack, run_dir)
        if args.run_only:
            print(f"wrote {run_dir}")
            return 0
    else:
        run_dir = args.from_run / args.model
    return _package(args.model, run_dir, args.out)




def _variants(text: str | None) -> list[str]:
    from app.inference.networks import VARIANTS

    names = [v.strip() for v in (text or "").split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"radlens train: unknown variant {unknown[0]!r} (known: {', '.join(VARIANTS)})")
    return names


def _run(args, pack: ImagePack, run_dir: Path) -> None:
    from app.training.cnn_run import run_classifier, run_segmenter, save_run

    device = pick_device(args.device)
    torch.manual_seed(0)
    np.random.seed(0)
    started = time.perf_counter()
    classes = _dataset(args.model).classes
    counts = np.bincount(pack.labels, minlength=len(classes))
    data = {"images": int(len(pack.labels)), "groups": int(len(set(pack.groups.tolist()))),
            "per_class": {c: int(n) for c, n in zip(classes, counts)}}

    def save(result: dict) -> None:
        from app.training.finetune import TRAINED

        save_run({**result, "data": data, "trained_images": dict(TRAINED)}, run_dir)

    variants = _variants(args.variants)
    if args.model == SEGMENTATION:
        recipe = SEGMENTATION_RECIPE if args.epochs is None else replace(SEGMENTATION_RECIPE, epochs=args.epochs)
        save(run_segmenter(pack, device, [replace(recipe, variant=v) for v in variants or [recipe.variant]],
                           args.imagenet))
    else:
        plan = PLANS[args.model]
        candidates = [r if args.epochs is None else replace(r, epochs=args.epochs) for r in plan.candidates]
        if variants:
            candidates = [replace(r, variant=v) for r in candidates for v in variants]
        run_classifier(plan, pack, device, candidates, imagenet_path=args.imagenet, save=save)
    print(f"{args.model}: trained in {(time.perf_counter() - started) / 60:.1f} min")


def _latency_image(model: str) -> Path | None:
    from app.training.datasets import list_samples

    try:
        return list_samples(_dataset(model))[0].image
    except FileNotFoundError:
        return None


def _package(model: str, run_dir: Path, out: Path) -> int:
    from app.training.package import write_classifier, write_segmenter

    data = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["data"]
    image = _latency_image(model)
    if model == SEGMENTATION:
        manifest = write_segmenter(run_dir, out / model, data["images"], _dataset(model).licence, image)
    else:
        manifest = write_classifier(PLANS[model], run_dir, out / model, data["images"], data["per_class"],
                                    data["groups"], image)
    print(f"wrote {manifest.folder} ({manifest.weights_path.stat().st_size / 1e6:.1f} MB); CPU latency "
          f"{manifest.card.get('cpu_latency_ms')}")
    return 0
