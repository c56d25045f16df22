"""Model packages: a folder with `model.json` (what the model is and how to feed it) and its weights."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TASKS = ("classification", "segmentation", "glam")
RESIZE_POLICIES = ("letterbox", "stretch")
MANIFEST_NAME = "model.json"


class ModelPackageError(Exception):
    """A model package that cannot be used, with the reason in one line."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason


@dataclass(frozen=True)
class InputSpec:
    size: tuple[int, int]  # (height, width) the network sees
    channels: int
    resize: str  # "letterbox" keeps the aspect ratio and pads; "stretch" does not
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class ModelManifest:
    folder: Path
    name: str
    version: str
    modalities: tuple[str, ...]
    task: str
    classes: tuple[str, ...]
    network: dict[str, Any]
    input: InputSpec
    explain_layers: dict[str, str]  # label -> module name
    default_explain_layer: str
    weights_file: str
    weights_sha256: str
    half_precision: bool
    licence: dict[str, str]
    card: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # task-specific settings (e.g. GLAM sizes)
    ood: dict[str, str] = field(default_factory=dict)  # {file, sha256, layer}: the out-of-distribution guard

    @property
    def ood_path(self) -> Path | None:
        return self.folder / self.ood["file"] if self.ood else None

    @property
    def warning(self) -> str:
        """What every result of this model must say (the card's `warning`), e.g. that it missed its targets."""
        return str(self.card.get("warning", ""))

    @property
    def weights_path(self) -> Path:
        return self.folder / self.weights_file

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    def matches(self, modality: str) -> bool:
        return modality in self.modalities


def read_manifest(folder: Path) -> ModelManifest:
    """Parse and check `folder/model.json`; ModelPackageError says what is wrong."""
    path = Path(folder) / MANIFEST_NAME
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelPackageError(folder, f"no {MANIFEST_NAME}") from None
    except (OSError, json.JSONDecodeError) as error:
        raise ModelPackageError(path, f"unreadable manifest ({error})") from error
    try:
        return _parse(Path(folder), raw)
    except (KeyError, TypeError, ValueError) as error:
        text = f"missing field {error}" if isinstance(error, KeyError) else str(error)
        raise ModelPackageError(path, text) from error


def _parse(folder: Path, raw: dict[str, Any]) -> ModelManifest:
    task = raw["task"]
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    classes = tuple(str(c) for c in raw["classes"])
    if not classes:
        raise ValueError("classes must not be empty")
    spec = raw["input"]
    size = tuple(int(v) for v in spec["size"])
    channels = int(spec["channels"])
    mean = tuple(float(v) for v in spec["normalization"]["mean"])
    std = tuple(float(v) for v in spec["normalization"]["std"])
    if len(size) != 2 or min(size) < 8:
        raise ValueError(f"input size must be [height, width], got {spec['size']}")
    if channels not in (1, 3) or len(mean) != channels or len(std) != channels or min(std) <= 0:
        raise ValueError("input channels must be 1 or 3 with a mean and a positive std per channel")
    resize = spec.get("resize", "letterbox")
    if resize not in RESIZE_POLICIES:
        raise ValueError(f"resize must be one of {', '.join(RESIZE_POLICIES)}")
    explain = raw.get("explain", {"layers": {}, "default": ""})
    layers = {str(k): str(v) for k, v in explain.get("layers", {}).items()}
    default = str(explain.get("default", next(iter(layers), "")))
    if layers and default not in layers:
        raise ValueError(f"explain.default {default!r} is not one of the explainable layers")
    weights = raw["weights"]
    sha = str(weights["sha256"]).lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ValueError("weights.sha256 must be 64 hex digits")
    modality = raw["modality"]
    return ModelManifest(
        folder=folder,
        name=str(raw["name"]),
        version=str(raw["version"]),
        modalities=tuple([modality] if isinstance(modality, str) else modality),
        task=task,
        classes=classes,
        network=dict(raw["network"]),
        input=InputSpec(size=size, channels=channels, resize=resize, mean=mean, std=std),
        explain_layers=layers,
        default_explain_layer=default,
        weights_file=str(weights["file"]),
        weights_sha256=sha,
        half_precision=bool(raw.get("half_precision", False)),
        licence={str(k): str(v) for k, v in raw.get("licence", {}).items()},
        card=dict(raw.get("card", {})),
        settings=dict(raw.get("settings", {})),
        ood=_ood(raw.get("ood")),
    )


def _ood(raw: Any) -> dict[str, str]:
    if not raw:
        return {}
    ood = {key: str(raw[key]) for key in ("file", "sha256", "layer")}
    if len(ood["sha256"]) != 64:
        raise ValueError("ood.sha256 must be 64 hex digits")
    return ood
