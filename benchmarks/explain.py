"""Cost of explanations: prediction + Grad-CAM for three layers, divided by plain prediction.

An EfficientNet-Lite0 classifier (the size the shipped models use) on one 512 x 512 image. Each figure is
the median of repeated rounds after a warm-up; in every round each method runs once, in turn, so
load spikes on a noisy machine hit all of them alike:

  plain        forward pass under torch.inference_mode (what a prediction without explanation costs)
  ours         RadLens' CamExplainer: the three layers' maps from ONE forward and ONE backward pass
  package x3   pytorch-grad-cam, one call per layer (three maps, as a per-layer view needs)
  package x1   pytorch-grad-cam, one call with all three layers (it returns one fused map, not three)

Goal: ours / plain <= 1.6. Runs on the CPU, and on CUDA too when a GPU is present.
Usage: python benchmarks/explain.py [--repeats N] [--device cpu|cuda|all]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from app.inference.cam_methods import GradCam  # noqa: E402
from app.inference.explain import CamExplainer  # noqa: E402
from app.inference.networks import build_network  # noqa: E402

LAYERS = ("_blocks.10", "_blocks.15", "_head_activation")  # 1/16, 1/32 and the head
SIZE, GOAL = 512, 1.6


def timed(runs: dict, repeats: int, device: torch.device) -> dict[str, float]:
    """Median seconds per run; the runs take turns in every round, so load spikes hit all of them."""
    for run in runs.values():
        run()  # warm-up (allocator, kernels)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            run()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def measure(device: torch.device, repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    network = build_network({"type": "efficientnet-lite", "num_classes": 3}).eval().to(device)
    image = torch.randn(1, 3, SIZE, SIZE, device=device)
    modules = dict(network.named_modules())

    def plain():
        with torch.inference_mode():
            network(image).argmax()

    def ours():
        with CamExplainer(network, list(LAYERS), GradCam()) as explainer:
            explainer(image)

    runs = {"plain": plain, "ours": ours}
    try:
        from pytorch_grad_cam import GradCAM
    except ImportError:
        print("pytorch-grad-cam is not installed (pip install grad-cam): package figures skipped")
        return timed(runs, repeats, device)

    def package(layer_groups):
        def run():
            for group in layer_groups:
                with GradCAM(model=network, target_layers=[modules[name] for name in group]) as cam:
                    cam(input_tensor=image, targets=None)
        return run

    runs["package x3"] = package([[name] for name in LAYERS])
    runs["package x1"] = package([list(LAYERS)])
    return timed(runs, repeats, device)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", choices=("cpu", "cuda", "all"), default="all")
    args = parser.parse_args()
    devices = [torch.device("cpu")] if args.device != "cuda" else []
    if args.device != "cpu" and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    elif args.device == "cuda":
        print("no CUDA GPU here")
        return 1
    results = {str(device): measure(device, args.repeats) for device in devices}
    print(f"\nEfficientNet-Lite0, {SIZE}x{SIZE}, layers {', '.join(LAYERS)}; median of {args.repeats}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name(0)}")
    print(f"{'device':<7}{'method':<13}{'ms':>9}{'x plain':>9}")
    verdicts = []
    for device, figures in results.items():
        for method, seconds in figures.items():
            print(f"{device:<7}{method:<13}{seconds * 1000:>9.1f}{seconds / figures['plain']:>9.2f}")
        ratio = figures["ours"] / figures["plain"]
        verdicts.append(f"{device}: prediction + 3 CAMs / prediction = {ratio:.2f} (goal <= {GOAL}) "
                        f"{'PASS' if ratio <= GOAL else 'MISS'}")
    print("\n".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
