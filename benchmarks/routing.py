"""How reliably images without a modality reach their own model (app/inference/routing.py).

Every image of ../shared/datasets busi (breast ultrasound, masks left out), brain_mri, chest_xray and
mias (mammograms) is read as the app reads a PNG/JPEG (no modality), its pooled shared-trunk features
are computed once (cached), and routing.choose_model decides with:

  held-out   each kind's guards refitted on four fifths of that kind's images, the other fifth routed
             (5 folds); the other kinds' guards as shipped. The honest figure: the shipped guards saw
             every image here (the held-back test images are not in ../shared).
  shipped    the guards as installed (in-sample: an upper bound).

and, as a check that the engine's one-pass scoring agrees, --engine N images per kind go through
InferenceEngine.guard_scores end to end. Target (issue 13): at least 95% routed to their own model.
Usage: python benchmarks/routing.py [--engine 20] [--cache DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from app.inference.ood import FeatureDistribution  # noqa: E402
from app.inference.registry import ModelRegistry  # noqa: E402
from app.inference.routing import GuardScore, choose_model  # noqa: E402
from app.inference.trunk import TRUNK_INPUT, load_trunk, pooled_layers  # noqa: E402
from app.io.study_loader import decode_image, read_info  # noqa: E402

DATA = ROOT.parent / "shared" / "datasets"
KINDS = {  # kind -> (files, the modalities of its own models)
    "breast ultrasound (busi)": (lambda: sorted(p for p in (DATA / "busi").rglob("*.png") if "_mask" not in p.name), "US"),
    "brain MRI (brain_mri)": (lambda: sorted((DATA / "brain_mri").rglob("*.jpg")), "MR"),
    "chest X-ray (chest_xray)": (lambda: sorted((DATA / "chest_xray").rglob("*.jpeg")), "CR"),
    "mammogram (mias)": (lambda: sorted((DATA / "mias" / "images").glob("*.png")), "MG"),
}
LAYERS = {"_blocks.10", "_blocks.14"}


def trunk_layer_name(layer: str) -> str:
    return layer.split(".", 1)[1] if layer.startswith("encoder.") else layer


def sample(paths: list[Path], count: int) -> list[Path]:
    if not count or count >= len(paths):
        return paths
    return [paths[i] for i in sorted(np.random.default_rng(0).choice(len(paths), count, replace=False))]


def features(paths: list[Path], cache: Path, name: str) -> dict[str, np.ndarray]:
    file = cache / f"routing-{name.split('(')[1].rstrip(')')}-{len(paths)}.npz"
    if file.is_file():
        return dict(np.load(file))
    trunk, rows = load_trunk(), {layer: [] for layer in LAYERS}
    for done, path in enumerate(paths, start=1):
        print(f"\r{name}: {done}/{len(paths)}", end="", file=sys.stderr, flush=True)
        pooled = pooled_layers(trunk, LAYERS, decode_image(read_info(path)), 0, TRUNK_INPUT)
        for layer in LAYERS:
            rows[layer].append(pooled[layer][0])
    out = {layer: np.stack(values) for layer, values in rows.items()}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(file, **out)
    return out


def route_all(registry, guards: dict[str, FeatureDistribution], feats: dict[str, np.ndarray], index) -> list[str]:
    """The name of the model chosen for each image (or '' for none)."""
    stub = SimpleNamespace(info=SimpleNamespace(modality="", is_mammogram=False))
    chosen = []
    for i in index:
        def scorer(models, i=i):
            return {m.key: GuardScore(float(guards[m.key].distance(feats[trunk_layer_name(m.ood["layer"])][i])[0]),
                                      guards[m.key].limit) for m in models}
        route = choose_model(stub, registry, scorer)
        chosen.append(route.model.name if route.model else "")
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", type=int, default=20, help="images per kind checked through the engine")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/radlens-routing"))
    parser.add_argument("--per-kind", type=int, default=400,
                        help="images per kind (a seeded random sample; 0: all, about 5300, an hour on 2 cores)")
    args = parser.parse_args()
    if not DATA.is_dir():
        print("../shared/datasets is absent; nothing to measure")
        return 1
    registry = ModelRegistry.discover()
    guarded = [m for m in registry.models if m.ood]
    print("guarded models:", ", ".join(f"{m.name} ({'/'.join(m.modalities)})" for m in guarded))
    shipped = {m.key: FeatureDistribution.load(m.ood_path, m.ood["sha256"]) for m in guarded}
    start = time.perf_counter()
    data = {kind: (sample(files(), args.per_kind), modality) for kind, (files, modality) in KINDS.items()}
    feats = {kind: features(paths, args.cache, kind) for kind, (paths, _) in data.items()}
    print(f"features of {sum(len(p) for p, _ in data.values())} images in {time.perf_counter() - start:.0f} s")
    totals = {"held-out": [0, 0], "shipped": [0, 0]}
    lines = []
    for kind, (paths, modality) in data.items():
        own = {m.name for m in registry.models if m.matches(modality)}
        kind_models = [m for m in guarded if m.matches(modality)]
        n = len(paths)
        held = [""] * n
        order = np.random.default_rng(0).permutation(n)
        for part in np.array_split(order, 5):
            rest = np.setdiff1d(order, part)
            guards = dict(shipped)
            for m in kind_models:
                guards[m.key] = FeatureDistribution.fit(feats[kind][trunk_layer_name(m.ood["layer"])][rest])
            for i, name in zip(part, route_all(registry, guards, feats[kind], part)):
                held[i] = name
        insample = route_all(registry, shipped, feats[kind], range(n))
        for label, chosen in (("held-out", held), ("shipped", insample)):
            right = sum(c in own for c in chosen)
            none = sum(c == "" for c in chosen)
            others = {}
            for c in chosen:
                if c and c not in own:
                    others[c] = others.get(c, 0) + 1
            totals[label][0] += right
            totals[label][1] += n
            lines.append(f"| {kind} | {label} | {n} | {100 * right / n:.1f}% | {100 * none / n:.1f}% | "
                         f"{', '.join(f'{k} {v}' for k, v in sorted(others.items())) or '-'} |")
    print("| images | guards | n | to their own model | to no model | to another model |")
    print("|---|---|---|---|---|---|")
    print("\n".join(lines))
    for label, (right, n) in totals.items():
        print(f"all kinds, {label}: {right}/{n} = {100 * right / n:.1f}% routed to their own model")
    if args.engine:
        from app.inference.runner import InferenceEngine

        engine, agree, total, seconds = InferenceEngine("cpu"), 0, 0, []
        for kind, (paths, _) in data.items():
            picks = np.random.default_rng(1).choice(len(paths), min(args.engine, len(paths)), replace=False)
            expected = route_all(registry, shipped, feats[kind], picks)
            for i, want in zip(picks, expected):
                image = decode_image(read_info(paths[i]))
                t = time.perf_counter()
                route = choose_model(image, registry, lambda ms, image=image: engine.guard_scores(ms, image))
                seconds.append(time.perf_counter() - t)
                agree += (route.model.name if route.model else "") == want
                total += 1
        print(f"engine check: {agree}/{total} decisions equal to the cached-feature ones; routing took "
              f"{1000 * np.median(seconds[1:]):.0f} ms per image (median, CPU, after the first)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
