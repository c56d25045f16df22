"""Loading weights safely: the file's sha256 first, no unpickling, every key and shape checked."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch

from app.inference.hash_cache import sha256_of
from app.inference.manifest import ModelPackageError

UNSAFE_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
log = logging.getLogger("radlens.models")


def read_state_dict(path: Path, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file, or a .pt/.pth state dict read with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise ModelPackageError(path, "weights file is missing")
    if expected_sha256 is not None:
        actual = sha256_of(path)
        if actual != expected_sha256:
            raise ModelPackageError(path, f"weights do not match their sha256 (expected {expected_sha256[:12]}…, "
                                          f"file has {actual[:12]}…): the file is damaged or not this model's")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # weights_only refuses anything but tensors and plain containers
        raise unpickling_refusal(path, error) from error
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelPackageError(path, "weights file does not hold a state dict of tensors")
    return state


def unpickling_refusal(path: Path, error: Exception) -> ModelPackageError:
    """One line for what torch.load(weights_only=True) refused and why; torch's long text goes to the log."""
    log.info("torch.load(weights_only=True) refused %s: %s", path, error)
    found = UNSAFE_GLOBAL.search(str(error))
    what = f"pickled Python code ({found.group(1)})" if found else "a pickle of more than tensors"
    return ModelPackageError(path, f"refused: the file holds {what}; RadLens reads weights only without "
                                   "unpickling code (tensors alone)")


def fit_problems(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> list[str]:
    """What keeps `state` from fitting a network whose state dict is `expected`, one phrase per kind."""
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    shapes = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
    if extra:
        problems.append(f"{len(extra)} unexpected (e.g. {', '.join(extra[:3])})")
    if shapes:
        k = shapes[0]
        problems.append(f"{len(shapes)} of another shape (e.g. {k}: {tuple(state[k].shape)} "
                        f"instead of {tuple(expected[k].shape)})")
    return problems


def load_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """Load every parameter and buffer; a missing, extra or mis-shaped key is an error, never partial."""
    problems = fit_problems(module.state_dict(), state)
    if problems:
        raise ModelPackageError(source, "weights do not fit the network: " + "; ".join(problems))
    module.load_state_dict(state, strict=True)


def write_safetensors(state: dict[str, torch.Tensor], path: Path) -> str:
    """Save tensors for a package and return their sha256 (for model.json)."""
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(path))
    return sha256_of(path)
