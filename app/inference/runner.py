"""Running a model package on an image: the networks, the device and GPU fallback, and the
out-of-distribution guard; what the model does with the image is its task's (tasks/)."""

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
from app.inference.manifest import InputSpec, ModelManifest, ModelPackageError
from app.inference.options import ExplainOptions
from app.inference.ood import FeatureDistribution
from app.inference.results import InferenceResult
from app.inference.routing import GuardScore
from app.inference.tasks import TASKS
from app.inference.trunk import TRUNK_INPUT, TRUNK_NAME, is_trunk_block, load_trunk, pooled_layers, trunk_prefix
from app.inference.weights import load_strict, read_state_dict


log = logging.getLogger("radlens.inference")


class InferenceEngine:
    """Keeps loaded networks per device and runs them, one image at a time (hooks are per network)."""

    def __init__(self, device: str = "auto") -> None:
        self.device_preference = device
        self._networks: dict[tuple[str, str], torch.nn.Module] = {}
        self._lock = threading.Lock()
        self._distributions: dict[str, FeatureDistribution] = {}
        self._trunk: torch.nn.Module | None = None  # the ImageNet trunk, loaded on first use
        self._no_imagenet = False  # its weights are not installed (installers leave them out)
        self._trunk_layers: dict[str, str | None] = {}  # model key -> its trunk's module prefix; None: not the trunk

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
            result, failure = self._on_device(lambda device: self._run_on(device, manifest, image, frame, options))
        if failure:
            log.warning("The GPU failed (%s); %s ran on the CPU instead", failure, manifest.name)
            fallback = f"The GPU failed ({failure}); this result was computed on the CPU."
            result = replace(result, note=" ".join(part for part in (fallback, result.note) if part))
        return result

    def guard_scores(self, manifests: list[ModelManifest], image: LoadedImage, frame: int = 0
                     ) -> dict[str, GuardScore]:
        """How far `image` lies from each model's training images (by model key; models without a guard
        are left out). Guards on the shared trunk are all scored from one trunk pass."""
        with self._lock:
            scores, failure = self._on_device(lambda device: self._guard_scores_on(device, manifests, image, frame))
        if failure:
            log.warning("The GPU failed (%s); the guards ran on the CPU instead", failure)
        return scores

    def _on_device(self, work):
        """work(device) on the chosen device; on a GPU failure again on the CPU. (result, GPU failure or "")."""
        device = choose_device(self.device_preference)
        try:
            return work(device), ""
        except Exception as error:
            if device.type == "cpu" or not is_gpu_failure(error):
                raise
            self._networks = {k: v for k, v in self._networks.items() if k[1] != str(device)}
            self._trunk = None
            if device.type == "cuda":
                torch.cuda.empty_cache()
            return work(torch.device("cpu")), str(error).strip().splitlines()[0][:160]

    def _guard_scores_on(self, device: torch.device, manifests: list[ModelManifest], image: LoadedImage,
                         frame: int) -> dict[str, GuardScore]:
        groups: dict[str, tuple[torch.nn.Module, InputSpec, dict[str, str]]] = {}
        on_trunk: dict[str, str] = {}  # model key -> its guard's layer in the shared trunk
        for manifest in manifests:
            if not manifest.ood:
                continue
            layer = self._trunk_layer(manifest, device)
            if layer is not None:
                on_trunk[manifest.key] = layer
                continue
            network = self.network(manifest, device)
            if manifest.ood["layer"] not in dict(network.named_modules()):
                raise ModelPackageError(manifest.folder, f"ood.layer {manifest.ood['layer']!r} is not in the network")
            groups[manifest.key] = (network, manifest.input, {manifest.key: manifest.ood["layer"]})
        if on_trunk:
            source = self._trunk_source(device, manifests)
            if source is None:
                log.warning("No shared trunk (no ImageNet weights, no package carrying it): the guards of %s "
                            "were not scored", ", ".join(on_trunk))
            else:
                network, prefix = source
                groups[""] = (network, TRUNK_INPUT, {key: prefix + layer for key, layer in on_trunk.items()})
        scores: dict[str, GuardScore] = {}
        for network, spec, layers in groups.values():
            pooled = pooled_layers(network, set(layers.values()), image, frame, spec, device)
            for key, layer in layers.items():
                manifest = next(m for m in manifests if m.key == key)
                guard = self.feature_distribution(manifest)
                scores[key] = GuardScore(float(guard.distance(pooled[layer])[0]), guard.limit)
        return scores

    def _trunk_layer(self, manifest: ModelManifest, device: torch.device) -> str | None:
        """The guard's layer in the shared trunk (`_blocks.N`), or None when it needs the package's network."""
        declared = manifest.ood.get("trunk")
        if declared:
            if declared != TRUNK_NAME:
                raise ModelPackageError(manifest.folder, f"ood.trunk {declared!r} is not a known trunk "
                                                         f"(known: {TRUNK_NAME})")
            if not is_trunk_block(manifest.ood["layer"]):
                raise ModelPackageError(manifest.folder, f"ood.layer {manifest.ood['layer']!r} is not a block of "
                                                         f"the shared trunk")
            return manifest.ood["layer"]
        if manifest.key not in self._trunk_layers:
            prefix = None
            if manifest.input == TRUNK_INPUT and TASKS[manifest.task].network_may_hold_trunk:
                prefix = trunk_prefix(self.network(manifest, device), manifest.ood["layer"])
            self._trunk_layers[manifest.key] = prefix
        prefix = self._trunk_layers[manifest.key]
        return None if prefix is None else manifest.ood["layer"][len(prefix):]

    def _trunk_source(self, device: torch.device, manifests: list[ModelManifest]
                      ) -> tuple[torch.nn.Module, str] | None:
        """The shared trunk and the prefix of its module names: the ImageNet weights where they are
        installed, else the network of a package shown to carry the trunk unchanged."""
        if self._trunk is None and not self._no_imagenet:
            try:
                self._trunk = load_trunk()
            except (ImportError, OSError, ValueError) as error:
                log.info("No ImageNet trunk weights (%s); using a package's own frozen trunk", error)
                self._no_imagenet = True
        if self._trunk is not None:
            if next(self._trunk.parameters()).device != device:
                self._trunk = self._trunk.to(device)
            return self._trunk, ""
        for manifest in manifests:
            if manifest.ood and not manifest.ood.get("trunk") and self._trunk_layer(manifest, device) is not None:
                return self.network(manifest, device), self._trunk_layers[manifest.key] or ""
        return None

    def _run_on(self, device: torch.device, manifest: ModelManifest, image: LoadedImage, frame: int,
                options: ExplainOptions) -> InferenceResult:
        network = self.network(manifest, device)
        with _pooled_output(network, manifest) as pooled:
            result = TASKS[manifest.task].run(network, device, manifest, image, frame, options)
        if pooled:
            guard = self.feature_distribution(manifest)
            result = replace(result, ood_distance=float(guard.distance(pooled[0][0].cpu().numpy())[0]),
                             ood_limit=guard.limit)
        result = self._with_trunk_guard(device, manifest, image, frame, result)
        return self._with_lesion_mask(device, manifest, image, frame, result) if manifest.lesion_mask else result

    def _with_lesion_mask(self, device: torch.device, manifest: ModelManifest, image: LoadedImage, frame: int,
                          result: InferenceResult) -> InferenceResult:
        """A classifier's result with the lesion mask of the segmentation package its settings name, unless its
        most probable class is one the mask is withheld for (settings.lesion_mask.not_when)."""
        rule, segmenter = manifest.lesion_mask, manifest.lesion_mask_model
        if segmenter is None:
            return replace(result, mask_note=f"{rule['model']} is not installed")
        called = result.classes[int(np.argmax(result.probabilities))]
        if called in rule.get("not_when", ()):
            return replace(result, mask_note=f"{manifest.name} calls the image {called}; choose "
                                             f"{segmenter.name} in the AI panel to see its mask anyway")
        drawn = self._run_on(device, segmenter, image, frame, ExplainOptions(layers=()))
        return replace(result, mask=drawn.mask, threshold=drawn.threshold, mask_model=drawn.model_key)

    def _with_trunk_guard(self, device: torch.device, manifest: ModelManifest, image: LoadedImage, frame: int,
                          result: InferenceResult) -> InferenceResult:
        """A guard fitted on the shared trunk (e.g. a GLAM package's) is scored by one trunk pass."""
        if manifest.ood.get("trunk") != TRUNK_NAME:
            return result
        score = self._guard_scores_on(device, [manifest], image, frame).get(manifest.key)
        return result if score is None else replace(result, ood_distance=score.distance, ood_limit=score.limit)

    def feature_distribution(self, manifest: ModelManifest) -> FeatureDistribution:
        if manifest.key not in self._distributions:
            self._distributions[manifest.key] = FeatureDistribution.load(manifest.ood_path, manifest.ood["sha256"])
        return self._distributions[manifest.key]


@contextmanager
def _pooled_output(network: torch.nn.Module, manifest: ModelManifest) -> Iterator[list[torch.Tensor]]:
    """Collects the spatially pooled output of the manifest's OOD layer during the block (none without one, or
    when the guard reads the shared trunk instead of the package's network)."""
    pooled: list[torch.Tensor] = []
    if not manifest.ood or manifest.ood.get("trunk"):  # a guard on the shared trunk: _with_trunk_guard scores it
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

