"""Importing an official GLAM checkpoint (which RadLens cannot ship) into a local model package.

The checkpoint must hold exactly the parameters of `GlamNetwork` (the names in the official
`model_joint` file); seven keys of that file that the method never uses are dropped by name.
Anything else — a missing key, an unknown key, another shape — is refused with the reason.
"""

from __future__ import annotations

from pathlib import Path

import torch

from app.inference.glam.networks import GlamNetwork
from app.inference.glam.pipeline import GlamSettings
from app.inference.hash_cache import sha256_of
from app.inference.manifest import ModelManifest, ModelPackageError
from app.inference.package_writer import write_model_package
from app.inference.weights import fit_problems, unpickling_refusal

UNUSED_JOINT_KEYS = ("mil.mil_attn_V.weight", "mil.mil_attn_U.weight", "mil.mil_attn_w.weight",
                     "mil.classifier_linear.weight", "fusion_dnn.weight", "fusion_dnn.bias",
                     "shared_rep_filter.weight")
OFFICIAL_NAME = "glam-official"


def checked_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors, strictly checked against the GLAM networks' names and shapes."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelPackageError(path, "no such file") from None
    except Exception as error:  # weights_only refuses pickled code; anything else is not a checkpoint
        raise unpickling_refusal(path, error) from error
    for wrapper in ("state_dict", "model"):
        if isinstance(raw, dict) and isinstance(raw.get(wrapper), dict):
            raw = raw[wrapper]
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise ModelPackageError(path, "the checkpoint does not hold a state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in raw.items() if k.removeprefix("module.") not in UNUSED_JOINT_KEYS}
    problems = fit_problems(GlamNetwork().state_dict(), state)
    if problems:
        raise ModelPackageError(path, "not a GLAM joint checkpoint: keys " + "; ".join(problems))
    return state


def import_checkpoint(path: Path, models_dir: Path, name: str = OFFICIAL_NAME) -> ModelManifest:
    """Write the package `models_dir/name` from an official checkpoint (official sizes and settings)."""
    path = Path(path)
    state = checked_state_dict(path)
    network = GlamNetwork()
    network.load_state_dict(state, strict=True)
    digest = sha256_of(path)
    settings = GlamSettings()
    manifest = {
        "name": name, "version": digest[:8], "modality": ["MG"], "task": "glam", "classes": ["benign", "malignant"],
        "network": {"type": "glam"},
        "input": {"size": list(settings.window), "channels": 1, "resize": "letterbox",
                  "normalization": {"mean": [0.0], "std": [1.0]}},
        "half_precision": False,
        "settings": {"glam": settings.to_dict()},
        "licence": {"weights": "the GLAM authors' terms (non-commercial research; not redistributable): "
                               "imported by the user, never shipped with RadLens"},
        "card": {"summary": "Official GLAM weights (Liu et al., MIDL 2021) imported from a checkpoint the user "
                            "holds. Trained on NYU screening mammograms; scores are not calibrated. For research "
                            "use; not a medical device.",
                 "source": {"file": path.name, "sha256": digest}},
    }
    return write_model_package(Path(models_dir) / name, network, manifest)
