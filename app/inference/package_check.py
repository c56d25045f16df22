"""What `radlens models` can tell about an installed package without running it: every file it names
is present, a regular file and of a plausible kind, and its hash is right when it is known or cheap."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from app.inference.hash_cache import known_sha256, sha256_of
from app.inference.manifest import ModelManifest, ModelPackageError

VERIFY_AT_LISTING_BYTES = 64 << 20
"""Files up to 64 MiB are hashed when listed (about 0.1 s each); larger ones once they are first used."""


@dataclass(frozen=True)
class PackageStatus:
    manifest: ModelManifest
    problem: str | None = None  # why the package will be refused when run; None when nothing was found
    unverified: tuple[str, ...] = ()  # files whose hash is not known yet

    @property
    def summary(self) -> str:
        if self.problem:
            return f"unusable: {self.problem}"
        if self.unverified:
            return f"not yet verified: {', '.join(self.unverified)} (checked when first run)"
        return "verified"


def check_package(manifest: ModelManifest, verify_up_to: int = VERIFY_AT_LISTING_BYTES) -> PackageStatus:
    files = [(manifest.weights_path, manifest.weights_sha256)]
    if manifest.ood:
        files.append((manifest.ood_path, manifest.ood["sha256"]))
    unverified = []
    try:
        for path, expected in files:
            size = _regular_size(path)
            sha = known_sha256(path) or (sha256_of(path) if size <= verify_up_to else None)
            if sha is None:
                unverified.append(f"{path.name} ({size / 2**20:,.0f} MiB)")
                continue
            if sha != expected:
                raise ModelPackageError(path, f"{path.name} does not match its sha256 (damaged, or not this "
                                              "model's file)")
            _check_kind(path)
    except ModelPackageError as error:
        return PackageStatus(manifest, problem=error.reason)
    return PackageStatus(manifest, unverified=tuple(unverified))


def _regular_size(path: Path) -> int:
    try:
        status = path.stat()
    except OSError:
        raise ModelPackageError(path, f"{path.name} is missing") from None
    if not path.is_file():
        raise ModelPackageError(path, f"{path.name} is not a regular file")
    if status.st_size == 0:
        raise ModelPackageError(path, f"{path.name} is empty")
    return status.st_size


def _check_kind(path: Path) -> None:
    """A safetensors header that parses; anything else must load with weights_only, which is where
    pickled code is refused (only files small enough to hash at listing get here before first use)."""
    if path.suffix == ".safetensors":
        with open(path, "rb") as handle:
            head = handle.read(8)
            length = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
            try:
                json.loads(handle.read(length) if 0 < length <= 100 << 20 else b"")
            except ValueError:
                raise ModelPackageError(path, f"{path.name} is not a safetensors file") from None
        return
    from app.inference.weights import read_state_dict

    read_state_dict(path)
