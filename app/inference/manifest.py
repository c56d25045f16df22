"""Model packages: a folder with `model.json` (what the model is and how to feed it) and its weights."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.errors import RadLensError
from app.io.limits import MANIFEST_MAX_BYTES

RESIZE_POLICIES = ("letterbox", "stretch")
MANIFEST_NAME = "model.json"


class ModelPackageError(RadLensError):
    """A model package that cannot be used, with the reason in one line."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(path, reason)
        self.path = Path(path)


class ModelNotFoundError(RadLensError, KeyError):
    """No installed model has the name asked for (a KeyError too, for callers that look names up)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return Exception.__str__(self)


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
    ood: dict[str, str] = field(default_factory=dict)  # {file, sha256, layer[, trunk]}: the out-of-distribution guard
    # the installed package named by settings.lesion_mask.model (the registry finds it; None: not installed)
    lesion_mask_model: ModelManifest | None = field(default=None, compare=False, repr=False)

    @property
    def ood_path(self) -> Path | None:
        return self.folder / self.ood["file"] if self.ood else None

    @property
    def warning(self) -> str:
        """What every result of this model must say (the card's `warning`), e.g. that it missed its targets."""
        return str(self.card.get("warning", ""))

    @property
    def lesion_mask(self) -> dict[str, Any]:
        """settings.lesion_mask of a classifier: {"model": a segmentation package's name, "not_when": [classes]}:
        its results carry that model's mask, except where the most probable class is one of `not_when`."""
        return self.settings.get("lesion_mask") or {}

    @property
    def weights_path(self) -> Path:
        return self.folder / self.weights_file

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    def matches(self, modality: str) -> bool:
        return modality in self.modalities


def read_manifest(folder: Path) -> ModelManifest:
    """Parse and check `folder/model.json`; ModelPackageError says what is wrong, whatever it is."""
    path = Path(folder) / MANIFEST_NAME
    try:
        size = path.stat().st_size
        if size > MANIFEST_MAX_BYTES:
            raise ModelPackageError(path, f"{MANIFEST_NAME} is {size:,} bytes, more than the "
                                          f"{MANIFEST_MAX_BYTES:,} a manifest may have; not read")
        raw = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ModelPackageError(folder, f"no {MANIFEST_NAME}") from None
    except UnicodeDecodeError as error:
        raise ModelPackageError(path, f"{MANIFEST_NAME} is not UTF-8 text (byte {error.start})") from None
    except RecursionError:
        raise ModelPackageError(path, f"{MANIFEST_NAME} nests too deeply to be a manifest") from None
    except (OSError, json.JSONDecodeError) as error:
        raise ModelPackageError(path, f"unreadable manifest ({error})") from error
    if not isinstance(raw, dict):
        raise ModelPackageError(path, f"{MANIFEST_NAME} must hold one JSON object")
    try:
        return _parse(Path(folder), raw)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError) as error:
        text = f"missing field {error}" if isinstance(error, KeyError) else str(error) or error.__class__.__name__
        raise ModelPackageError(path, text) from error


def package_file(folder: Path, name: str, field: str) -> str:
    """`name` when it is a file inside `folder` (links resolved); ValueError for an absolute name or one
    that leads outside the package, such as `../../outside/weights.safetensors`."""
    name = str(name)
    if not name or Path(name).is_absolute() or "\\" in name:
        raise ValueError(f"{field} {name!r} must be a file name inside the package folder")
    root = Path(folder).resolve()
    if not (root / name).resolve().is_relative_to(root):
        raise ValueError(f"{field} {name!r} leads outside the package folder; refused")
    return name


def _package_name(name: str) -> str:
    if not name or name in (".", "..") or any(c in name for c in "/\\:\0") or name.startswith("."):
        raise ValueError(f"name {name!r} must be a plain folder name (no path)")
    return name


def _parse(folder: Path, raw: dict[str, Any]) -> ModelManifest:
    from app.inference.tasks import TASKS  # here, not above: the task modules import this one

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
    settings = dict(raw.get("settings", {}))
    _check_lesion_mask(settings.get("lesion_mask"), task, classes)
    return ModelManifest(
        folder=folder,
        name=_package_name(str(raw["name"])),
        version=str(raw["version"]),
        modalities=tuple([modality] if isinstance(modality, str) else modality),
        task=task,
        classes=classes,
        network=dict(raw["network"]),
        input=InputSpec(size=size, channels=channels, resize=resize, mean=mean, std=std),
        explain_layers=layers,
        default_explain_layer=default,
        weights_file=package_file(folder, weights["file"], "weights.file"),
        weights_sha256=sha,
        half_precision=bool(raw.get("half_precision", False)),
        licence={str(k): str(v) for k, v in raw.get("licence", {}).items()},
        card=dict(raw.get("card", {})),
        settings=settings,
        ood=_ood(folder, raw.get("ood")),
    )


def _check_lesion_mask(rule: Any, task: str, classes: tuple[str, ...]) -> None:
    if rule is None:
        return
    if task != "classification" or not isinstance(rule, dict) or not isinstance(rule.get("model"), str):
        raise ValueError('settings.lesion_mask must be {"model": a segmentation package, "not_when": [classes]} '
                         "on a classifier")
    unknown = [c for c in rule.get("not_when", []) if c not in classes]
    if unknown:
        raise ValueError(f"settings.lesion_mask.not_when names {unknown[0]!r}, not one of the classes")


def _ood(folder: Path, raw: Any) -> dict[str, str]:
    if not raw:
        return {}
    ood = {key: str(raw[key]) for key in ("file", "sha256", "layer")}
    if raw.get("trunk"):  # fitted on the shared trunk's features rather than the package's network
        ood["trunk"] = str(raw["trunk"])
    package_file(folder, ood["file"], "ood.file")
    if len(ood["sha256"]) != 64:
        raise ValueError("ood.sha256 must be 64 hex digits")
    return ood
