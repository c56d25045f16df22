"""The sha256 of package files, remembered by path, size and modification time, so that listing the
models can say which were verified without reading every weights file again."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path


CACHE_NAME = "verified-files.json"
log = logging.getLogger("radlens.models")


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """Hash the file now, and remember it for `known_sha256`."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    _remember(Path(path), digest.hexdigest())
    return digest.hexdigest()


def known_sha256(path: Path) -> str | None:
    """The hash last computed for this file, if its size and modification time are still the same."""
    entry = _load().get(str(Path(path).resolve()))
    return entry[2] if entry and entry[:2] == _stamp(path) else None


def _stamp(path: Path) -> list[int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return [status.st_size, status.st_mtime_ns]


def _cache_path() -> Path | None:
    """None where platformdirs is not installed (a training machine): nothing is remembered there."""
    try:
        from platformdirs import user_cache_dir
    except ImportError:
        return None
    return Path(user_cache_dir("RadLens", appauthor=False)) / CACHE_NAME


def _load() -> dict[str, list]:
    path = _cache_path()
    if path is None:
        return {}
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}


def _remember(path: Path, sha256: str) -> None:
    target = _cache_path()
    if target is None:
        return
    entries = _load()
    entries[str(path.resolve())] = [*(_stamp(path) or [0, 0]), sha256]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=target.parent, delete=False, encoding="utf-8") as handle:
            json.dump(entries, handle)
        os.replace(handle.name, target)
    except OSError as error:  # a read-only cache only costs hashing again next time
        log.debug("Could not remember the hash of %s: %s", path, error)
