"""Send DICOM files to the PACS: C-STORE, or STOW-RS when asked."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pydicom

from app.pacs import dimse
from app.pacs.settings import PacsSettings


def send_files(settings: PacsSettings, paths: list[Path], *, web: bool = False,
               progress: Callable[[int, int], None] | None = None) -> list[tuple[str, str]]:
    """(file, reason) for each file not stored; files that are not DICOM are reported, never sent.
    PacsError when the PACS cannot be reached at all."""
    readable, failed = [], []
    for path in paths:
        try:
            ds = pydicom.dcmread(path)
            if "SOPClassUID" not in ds or "SOPInstanceUID" not in ds or "TransferSyntaxUID" not in ds.file_meta:
                raise ValueError("no SOP Class, SOP Instance or transfer syntax")
            readable.append((str(path), ds))
        except (OSError, ValueError, pydicom.errors.InvalidDicomError) as error:
            failed.append((str(path), f"not a DICOM file that can be sent ({type(error).__name__})"))
    if not readable:
        return failed
    if web:
        from app.pacs.web import stow

        refused = dict(stow(settings, [ds for _, ds in readable]))
        if progress:
            progress(len(readable), len(readable))
        by_uid = {str(ds.SOPInstanceUID): path for path, ds in readable}
        return failed + [(by_uid.get(uid, uid), reason) for uid, reason in refused.items()]
    return failed + dimse.store_datasets(settings, readable, progress)
