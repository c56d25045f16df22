"""Time and peak memory of GLAM on one four-view exam at the official 2944 x 1920 size.

Random weights in the official architecture (the official weights are not available here; the
cost does not depend on their values). Four views: the ../shared glam_sample exam when present,
else four synthetic 16-bit views of the same sizes. Each variant runs in a fresh process (peak
memory = its VmHWM), first round discarded, then the best of --repeats rounds:

  ours      RadLens: the four windows through the global network as ONE batch, the four patches
            through the local network as ONE batch, inference mode, channels-last on CUDA, saliency fused
            at the local map's 4-pixel grid and placed on each image's grid once
  per-view  the straightforward way (as the reference reads an exam): one view at a time, no_grad,
            default memory format, both maps upsampled to the full 2944 x 1920 window and fused there
  lite      mg-glam-lite (the shipped package in models/ when present, else random weights of its
            architecture): the same four views through the same pipeline as `ours` at the package's
            sizes (views read at 400 micron: x0.5 for these PNGs without a pixel spacing, a 512 x 320
            window, 128-pixel patches, EfficientNet-Lite0 trunks), calibration and OOD features included

  lite-lite1, lite-lite2   the same with random weights on EfficientNet-Lite1 or -Lite2 trunks (what a larger
            trunk would cost; `radlens train mg-glam-lite --variant` trains one)

Goals (issue): ours < 10 s per exam on a 2-core CPU where the reference takes about 16 s, i.e. a
ratio per-view / ours of 1.6 or more in the same run; < 1 s on an H100-class GPU. lite: < 5 s per
exam and < 1.5 GB peak memory on the 2-core CPU, < 1 s on a GPU. The script also
prints the local network's multiply-accumulates and the rate this CPU reached on them, because the
local network (~370 GMAC per patch) bounds what any fp32 implementation can reach here.
Usage: python benchmarks/glam.py [--repeats N] [--device cpu|cuda] [--variants ours,per-view,lite,lite-lite1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from app.core.image import ImageInfo, LoadedImage  # noqa: E402
from app.inference.glam.networks import GlamNetwork  # noqa: E402
from app.inference.glam.on_images import prepare_image, run_images  # noqa: E402
from app.inference.glam.pipeline import (GlamSettings, global_outputs, select_patches)  # noqa: E402

SAMPLE = ROOT.parent / "shared" / "datasets" / "glam_sample" / "images"
SIZES = {"L-CC": (2023, 801), "R-CC": (2144, 801), "L-MLO": (2730, 981), "R-MLO": (2650, 1006)}
GOAL_SECONDS, GOAL_RATIO, GPU_GOAL = 10.0, 1.6, 1.0
LITE_GOAL_SECONDS, LITE_GOAL_MB = 5.0, 1536
LITE_PACKAGE = ROOT / "models" / "mg-glam-lite"
LITE_TRUNKS = ("ours", "per-view", "lite", "lite-lite1", "lite-lite2")


def exam_images() -> list[LoadedImage]:
    import cv2

    images = []
    rng = np.random.default_rng(0)
    for view, (height, width) in SIZES.items():
        path = SAMPLE / f"0_{view}.png"
        if path.is_file():
            pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        else:
            pixels = np.zeros((height, width), np.uint16)
            breast = rng.integers(600, 3000, (height - 100, width - 60)).astype(np.uint16)
            pixels[50:-50, :width - 60] = breast
            pixels = pixels[:, ::-1].copy() if view.startswith("R") else pixels
        info = ImageInfo(path=path, source_format="png", modality="MG", laterality=view[0], view=view[2:])
        images.append(LoadedImage(info, pixels[None]))
    return images


def local_gmac(patch: int = 512) -> float:
    """Multiply-accumulates of the local network's convolutions on one patch, counted by hooks."""
    network, macs = GlamNetwork().detection_network, [0]

    def count(module, _inputs, output):
        macs[0] += output[0].numel() * module.in_channels * module.kernel_size[0] * module.kernel_size[1]

    hooks = [m.register_forward_hook(count) for m in network.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.inference_mode():
        network.to("meta")(torch.zeros(1, 1, patch, patch, device="meta"))  # shapes only, no arithmetic
    for hook in hooks:
        hook.remove()
    return macs[0] / 1e9


def per_view(network: GlamNetwork, images: list[LoadedImage], settings: GlamSettings, device) -> None:
    for image in images:
        view = prepare_image(image, settings)
        window = torch.from_numpy(view.window)[None, None].to(device)
        with torch.no_grad():
            _, saliency, _ = global_outputs(network, window, settings.top_t)
            (row, col), = select_patches(saliency, settings.patch)
            local = network.detection_network(window[:, :, row:row + settings.patch, col:col + settings.patch])
            full = F.interpolate(saliency, size=settings.window, mode="nearest")
            pasted = torch.zeros_like(full)
            pasted[:, :, row:row + settings.patch, col:col + settings.patch] = F.interpolate(
                local, size=(settings.patch, settings.patch), mode="nearest")
            fused = ((full + pasted) / 2).cpu().numpy()
        for channel in fused[0]:
            view.placement.to_source(channel, view.source_shape, 1)


def lite_exam(images: list[LoadedImage], device: torch.device, trunk: str | None = None):
    """mg-glam-lite as the app runs it: a closure reading the exam (package weights when shipped); with
    `trunk` (lite1, lite2), random weights of that larger EfficientNet-Lite at the package's sizes."""
    from app.inference.glam.lite import GlamLiteNetwork, ood_layer
    from app.inference.glam.on_images import calibrated_scores

    if trunk:
        from app.training.glam_lite_command import SETTINGS as settings

        network, temperature = GlamLiteNetwork(trunk), [1.0, 1.0]
    elif (LITE_PACKAGE / "model.json").is_file():
        from app.inference.manifest import read_manifest
        from app.inference.networks import build_network
        from app.inference.weights import load_strict, read_state_dict

        manifest = read_manifest(LITE_PACKAGE)
        network = build_network(manifest.network)
        load_strict(network, read_state_dict(manifest.weights_path, manifest.weights_sha256), manifest.weights_path)
        settings, temperature = GlamSettings.from_dict(manifest.settings["glam"]), manifest.settings["temperature"]
    else:
        from app.training.glam_lite_command import SETTINGS as settings

        network, temperature = GlamLiteNetwork(), [1.0, 1.0]
    network = network.eval().to(device)
    module = dict(network.named_modules())[ood_layer(network)]
    pooled = []
    module.register_forward_hook(lambda _m, _i, out: pooled.append(out.float().mean((2, 3))))

    def read() -> None:
        outputs = run_images(network, [(image, 0) for image in images], settings, device)
        [calibrated_scores(out.scores, temperature) for out in outputs]
        torch.cat(pooled).cpu().numpy()
        pooled.clear()

    return read


def run_variant(variant: str, repeats: int, device_name: str) -> dict:
    device = torch.device(device_name)
    torch.manual_seed(0)
    if variant.startswith("lite"):
        read = lite_exam(exam_images(), device, variant.removeprefix("lite-") if variant != "lite" else None)
        return _timed(read, repeats, device)
    network = GlamNetwork().eval().to(device)
    if variant == "ours" and device.type == "cuda":
        network = network.to(memory_format=torch.channels_last)
    images, settings = exam_images(), GlamSettings()
    if variant == "ours":
        return _timed(lambda: run_images(network, [(image, 0) for image in images], settings, device), repeats, device)
    return _timed(lambda: per_view(network, images, settings, device), repeats, device)


def _timed(read, repeats: int, device: torch.device) -> dict:
    """The first round discarded, the best of the others; peak memory of this process."""
    times = []
    for _ in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        read()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
    return {"seconds": min(times[1:]), "rounds": times, "peak_mb": peak_kb / 1024,
            "gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None}


def local_rate(device_name: str) -> float:
    """GMAC/s of the local network alone on one 512 x 512 patch (best of 2)."""
    network = GlamNetwork().detection_network.eval().to(device_name)
    patch = torch.randn(1, 1, 512, 512, device=device_name)
    best = float("inf")
    with torch.inference_mode():
        for _ in range(3):
            start = time.perf_counter()
            network(patch)
            if device_name == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
    return local_gmac() / best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--variants", default="ours,per-view,lite",
                        help="comma-separated: ours, per-view (the official architecture), lite (mg-glam-lite), "
                             "lite-lite1, lite-lite2 (its architecture on a larger EfficientNet-Lite, random weights)")
    parser.add_argument("--variant", choices=LITE_TRUNKS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.repeats, args.device)))
        return 0
    load = Path("/proc/loadavg").read_text().split()[0]
    print(f"GLAM, four views at 2944 x 1920, {args.device}, {torch.get_num_threads()} threads, load {load}; "
          f"views from {'glam_sample' if SAMPLE.is_dir() else 'synthetic images'}")
    results = {}
    variants = [v for v in args.variants.split(",") if v]
    for variant in variants:
        out = subprocess.run([sys.executable, __file__, "--variant", variant, "--repeats", str(args.repeats),
                              "--device", args.device], capture_output=True, text=True, check=True)
        results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[variant]
        print(f"  {variant:9s} {r['seconds']:7.2f} s per exam  peak {r['peak_mb']:7.0f} MB"
              + (f"  GPU peak {r['gpu_peak_mb']:.0f} MB" if r["gpu_peak_mb"] else "")
              + f"   rounds {', '.join(f'{t:.2f}' for t in r['rounds'])}")
    if "lite" in results:
        lite = results["lite"]
        goal = GPU_GOAL if args.device == "cuda" else LITE_GOAL_SECONDS
        print(f"lite {lite['seconds']:.2f} s per exam (goal < {goal:g} s: {'PASS' if lite['seconds'] < goal else 'MISS'}), "
              f"peak {lite['peak_mb']:.0f} MB (goal < {LITE_GOAL_MB} MB: "
              f"{'PASS' if lite['peak_mb'] < LITE_GOAL_MB else 'MISS'}); "
              f"{'shipped weights' if (LITE_PACKAGE / 'model.json').is_file() else 'random weights'}")
    if not {"ours", "per-view"} <= set(results):
        return 0
    ours, baseline = results["ours"]["seconds"], results["per-view"]["seconds"]
    rate = local_rate(args.device)
    goal = GPU_GOAL if args.device == "cuda" else GOAL_SECONDS
    print(f"ratio per-view / ours = {baseline / ours:.2f} (goal >= {GOAL_RATIO}: "
          f"{'PASS' if baseline / ours >= GOAL_RATIO else 'MISS'})")
    print(f"ours {ours:.2f} s per exam (goal < {goal:g} s: {'PASS' if ours < goal else 'MISS'})")
    print(f"local network: {local_gmac():.1f} GMAC per patch, {rate:.1f} GMAC/s here, so four patches need at "
          f"least {4 * local_gmac() / rate:.1f} s on this device in fp32")
    return 0


if __name__ == "__main__":
    sys.exit(main())
