"""Writing a DICOM file whole: into a `.part` beside it, then renamed, so a reader never sees half a file."""

from __future__ import annotations

from pathlib import Path

import pydicom


def save_whole(dataset: pydicom.Dataset, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".part")
    dataset.save_as(partial, enforce_file_format=True)
    partial.replace(out)
    return out
