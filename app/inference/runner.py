"""Running a model package on an image: device choice and GPU fallback, explanations, results."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
import torch

from app.core.image import LoadedImage
from app.inference.device import choose_device, is_gpu_failure
from app.inference.manifest import ModelManifest, ModelPackageError
from app.inference.options import METHODS, ExplainOptions  # noqa: F401 (METHODS: part of this module's API)
from app.inference.ood import FeatureDistribution
from app.inference.preprocess import InputGeometry, prepare_input
from app.inference.results import InferenceResult
from app.inference.weights import load_strict, read_state_dict


log = logging.getLogger("radlens.inference")


class InferenceError(Exception):
    """A model that could not run on an image, with the reason in one line."""


class InferenceEngine:
    """Keeps loaded networks per device and runs them, one image at a time (hooks are per network)."""

    def __init__(self, device: str = "auto") -> None:
        self.device_preference = device
        self._networks: dict[tuple[str, str], torch.nn.Module] = {}
        self._lock = threading.Lock()
        self._distributions: dict[str, FeatureDistribution] = {}

    def network(self, manifest: ModelManifest, device: torch.device) -> torch.nn.Module:
        key = (manifest.key, str(device))
        if key not in self._networks:
            from app.inference.networks import build_network

            try:
                network = build_network(manifest.network)
            except ValueError as error:
                raise ModelPackageError(manifest.folder, str(error)) from error
            load_strict(network, read_state_dict(manifest.weights_path, manifest.weights_sha256),
                        manifest.weights_path)
            self._networks[key] = network.eval().to(device)
        return self._networks[key]

    def run(self, manifest: ModelManifest, image: LoadedImage, frame: int = 0,
            options: ExplainOptions = ExplainOptions()) -> InferenceResult:
        with self._lock:
            return self._run(manifest, image, frame, options)

    def _run(self, manifest: ModelManifest, image: LoadedImage, frame: int,
             options: ExplainOptions) -> InferenceResult:
        device = choose_device(self.device_preference)
        try:
            return self._run_on(device, manifest, image, frame, options)
        except Exception as error:
            if device.type == "cpu" or not is_gpu_failure(error):
                raise
            self._networks = {k: v for k, v in self._networks.items() if k[1] != str(device)}
            if device.type == "cuda":
                torch.cuda.empty_cache()
            result = self._run_on(torch.device("cpu"), manifest, image, frame, options)
            reason = str(error).strip().splitlines()[0][:160]
            log.warning("The GPU failed (%s); %s ran on the CPU instead", reason, manifest.name)
            fallback = f"The GPU failed ({reason}); this result was computed on the CPU."
            return replace(result, note=" ".join(part for part in (fallback, result.note) if part))

    def _run_on(self, device: torch.device, manifest: ModelManifest, image: LoadedImage, frame: int,
                options: ExplainOptions) -> InferenceResult:
        network = self.network(manifest, device)
        if manifest.task == "glam":
            return self._glam(network, device, manifest, [(image, frame)])[0]
        tensor, geometry = prepare_input(image, frame, manifest.input)
        tensor = tensor.to(device)
        base = InferenceResult(image_identity=image.info.identity, model_key=manifest.key, task=manifest.task,
                               classes=manifest.classes, device=str(device),
                               note=manifest.warning,
                               calibrated="temperature" in manifest.settings)
        half = manifest.half_precision and device.type == "cuda"
        with _pooled_output(network, manifest) as pooled:
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=half):
                if manifest.task == "segmentation":
                    result = self._segment(network, tensor, geometry, manifest, base)
                else:
                    result = self._classify(network, tensor, geometry, manifest, options, base)
        if pooled:
            guard = self.feature_distribution(manifest)
            result = replace(result, ood_distance=float(guard.distance(pooled[0][0].cpu().numpy())[0]),
                             ood_limit=guard.limit)
        return result

    def _glam(self, network, device: torch.device, manifest: ModelManifest, images: list[tuple[LoadedImage, int]]
              ) -> list[InferenceResult]:
        from app.inference.glam.on_images import calibrated_scores, run_images
        from app.inference.glam.pipeline import GlamSettings

        try:
            settings = GlamSettings.from_dict(manifest.settings.get("glam", {}))
        except (TypeError, ValueError) as error:
            raise ModelPackageError(manifest.folder, f"settings.glam: {error}") from error
        try:
            with _pooled_output(network, manifest) as pooled:
                outputs = run_images(network, images, settings, device)
        except ValueError as error:  # e.g. no breast found in an empty image
            raise InferenceError(str(error)) from error
        temperature = manifest.settings.get("temperature")
        distances = (self.feature_distribution(manifest).distance(torch.cat(pooled).cpu().numpy()) if pooled
                     else [None] * len(images))
        limit = self.feature_distribution(manifest).limit if pooled else None
        return [InferenceResult(image_identity=image.info.identity, model_key=manifest.key, task="glam",
                                classes=manifest.classes, device=str(device),
                                probabilities=calibrated_scores(out.scores, temperature),
                                calibrated=temperature is not None, note=manifest.warning,
                                ood_distance=None if distance is None else float(distance), ood_limit=limit,
                                saliency=out.saliency, map_scale=out.map_scale, patches=(out.patch,))
                for (image, _), out, distance in zip(images, outputs, distances)]

    def feature_distribution(self, manifest: ModelManifest) -> FeatureDistribution:
        if manifest.key not in self._distributions:
            self._distributions[manifest.key] = FeatureDistribution.load(manifest.ood_path, manifest.ood["sha256"])
        return self._distributions[manifest.key]

    @staticmethod
    def _segment(network, tensor, geometry: InputGeometry, manifest: ModelManifest,
                 base: InferenceResult) -> InferenceResult:
        with torch.inference_mode():
            logits = network(tensor)
        probability = torch.sigmoid(logits.float())[0, 0].cpu().numpy()
        return replace(base, mask=geometry.to_image(probability),
                       threshold=float(manifest.settings.get("threshold", 0.5)))

    @staticmethod
    def _classify(network, tensor, geometry: InputGeometry, manifest: ModelManifest, options: ExplainOptions,
                  base: InferenceResult) -> InferenceResult:
        labels = (manifest.default_explain_layer,) if options.layers is None else options.layers
        labels = tuple(label for label in labels if label)
        unknown = [label for label in labels if label not in manifest.explain_layers]
        if unknown:
            raise InferenceError(f"{manifest.name} has no explainable layer {unknown[0]!r} "
                                 f"(it has {', '.join(manifest.explain_layers)})")
        temperature = float(manifest.settings.get("temperature", 1.0))
        if not labels:
            with torch.inference_mode():
                logits = network(tensor)
            probabilities = torch.softmax(logits.float() / temperature, dim=1)[0].cpu().numpy()
            return replace(base, probabilities=probabilities, target_class=int(np.argmax(probabilities)))
        from app.inference.explain import CamExplainer, GradCam, GradCamPlusPlus

        if options.method not in METHODS:
            raise InferenceError(f"unknown explanation method {options.method!r}")
        method = GradCam() if options.method == "gradcam" else GradCamPlusPlus()
        modules = [manifest.explain_layers[label] for label in labels]
        with CamExplainer(network, modules, method=method) as explainer:
            explained = explainer(tensor, target_class=options.target_class)
        logits = torch.as_tensor(explained.logits).float().reshape(1, -1)
        probabilities = torch.softmax(logits / temperature, dim=1)[0].cpu().numpy()
        heatmaps = {label: _rescaled01(geometry.to_image(np.asarray(explained.maps[module])))
                    for label, module in zip(labels, modules)}
        return replace(base, probabilities=probabilities, target_class=int(explained.target_class),
                       method=METHODS[options.method], heatmaps=heatmaps)


@contextmanager
def _pooled_output(network: torch.nn.Module, manifest: ModelManifest) -> Iterator[list[torch.Tensor]]:
    """Collects the spatially pooled output of the manifest's OOD layer during the block (none without one)."""
    pooled: list[torch.Tensor] = []
    if not manifest.ood:
        yield pooled
        return
    layer = dict(network.named_modules()).get(manifest.ood["layer"])
    if layer is None:
        raise ModelPackageError(manifest.folder, f"ood.layer {manifest.ood['layer']!r} is not in the network")
    handle = layer.register_forward_hook(lambda _m, _i, out: pooled.append(out.detach().float().mean((2, 3))))
    try:
        yield pooled
    finally:
        handle.remove()


def _rescaled01(values: np.ndarray) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    return ((values - lo) / (hi - lo)).astype(np.float32) if hi > lo else np.zeros_like(values, np.float32)
