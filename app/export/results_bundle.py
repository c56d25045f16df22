"""What a study's AI results make for a PACS: a findings SR per study and model, a DICOM SEG per mask (at the
reader's threshold) and the view as shown as a secondary capture. Qt-free; the AI panel's Send results to
PACS and `radlens predict --send` both write through it."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom

from app.core.text import printable
from app.export.findings_sr import FindingsSrError, ImageFindings, findings_from_result, write_findings_sr
from app.export.secondary_capture import SecondaryCaptureError, write_secondary_capture
from app.inference.results import InferenceResult
from app.io.seg_export import SegExportError, write_dicom_seg

SR, SEG, SC = "findings SR", "DICOM SEG", "secondary capture"
NOT_DICOM = "not a DICOM image: a PACS takes results of DICOM images only"


@dataclass(frozen=True)
class ImageResult:
    """One image's result: `source` is the DICOM file it is about (for a stack of slices, the slice's own
    file), `frame` the frame within that file; `result` carries the reader's mask threshold (as shown)."""

    source: Path
    result: InferenceResult
    frame: int = 0
    is_dicom: bool = True


@dataclass(frozen=True)
class ViewCapture:
    """The active view as the reader sees it (RGB, overlays burned in) and the DICOM image under it."""

    source: Path
    rgb: np.ndarray
    image_identity: str
    description: str = ""
    orientation: tuple[str, str] | None = None  # row and column directions as shown
    is_dicom: bool = True


@dataclass(frozen=True)
class Written:
    path: Path
    kind: str
    image_identity: str = ""  # "" for a report that covers several images


@dataclass
class Bundle:
    written: list[Written] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image, why it makes nothing to send)

    @property
    def paths(self) -> list[Path]:
        return [item.path for item in self.written]

    def kinds(self) -> str:
        """e.g. "1 findings SR, 2 DICOM SEG" """
        counts: dict[str, int] = defaultdict(int)
        for item in self.written:
            counts[item.kind] += 1
        return ", ".join(f"{count} {kind}" for kind, count in counts.items())


class BundleWriter:
    """Add image results one by one (a SEG is written at once, so masks are not kept), then `finish()`
    writes one findings SR per study and model. Problems are collected in the bundle, never raised."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.bundle = Bundle()
        self._findings: dict[tuple[str, str], list[tuple[ImageFindings, str]]] = defaultdict(list)
        self._numbers: dict[str, int] = defaultdict(int)

    def _next_path(self, prefix: str) -> Path:
        self._numbers[prefix] += 1
        return self.out / f"{prefix}-{self._numbers[prefix]:03d}.dcm"

    def _skip(self, source: Path, reason: str) -> None:
        entry = (printable(Path(source).name), reason)
        if entry not in self.bundle.skipped:
            self.bundle.skipped.append(entry)

    def add(self, item: ImageResult) -> None:
        result = item.result
        if not item.is_dicom:
            self._skip(item.source, NOT_DICOM)
            return
        try:
            header = pydicom.dcmread(item.source, stop_before_pixels=True)
            study = str(header.StudyInstanceUID)
        except (OSError, AttributeError, pydicom.errors.InvalidDicomError):
            self._skip(item.source, NOT_DICOM)
            return
        if result.mask is not None:
            try:
                path = write_dicom_seg(item.source, result.mask >= result.threshold, self._next_path("seg"),
                                       algorithm=result.mask_source, frame=item.frame)
                self.bundle.written.append(Written(path, SEG, result.image_identity))
            except SegExportError as error:
                self._skip(item.source, f"no DICOM SEG: {error}")
        if result.probabilities is not None:
            try:
                findings = findings_from_result(item.source, result)
            except FindingsSrError as error:
                self._skip(item.source, str(error))
                return
            self._findings[(study, result.model_key)].append((findings, result.image_identity))

    def add_capture(self, capture: ViewCapture) -> None:
        if not capture.is_dicom:
            self._skip(capture.source, NOT_DICOM)
            return
        try:
            path = write_secondary_capture(capture.source, capture.rgb, self._next_path("sc"),
                                           description=capture.description,
                                           patient_orientation=capture.orientation)
            self.bundle.written.append(Written(path, SC, capture.image_identity))
        except SecondaryCaptureError as error:
            self._skip(capture.source, f"no secondary capture: {error}")

    def finish(self) -> Bundle:
        for (_study, model_key), items in self._findings.items():
            name, _, version = model_key.partition("@")
            try:
                path = write_findings_sr([f for f, _ in items], self._next_path("sr"), model=name, version=version)
            except FindingsSrError as error:
                self._skip(items[0][0].source, f"no findings SR: {error}")
                continue
            identities = [identity for _, identity in items]
            self.bundle.written.append(Written(path, SR, identities[0] if len(identities) == 1 else ""))
        self._findings.clear()
        return self.bundle


def shown_file(session, series_identity: str):
    """(ImageInfo, frame in that file) of what a cell of the session shows now, or None: for a stack of
    single-frame slices the slice's own file, for a multi-frame file the frame."""
    state = session.states.get(series_identity)
    series = next((c.series for c in session.hanging.cells if c.series is not None
                   and c.series.identity == series_identity), None) if session.hanging else None
    if state is None or series is None:
        return None
    if len(series.images) > 1:
        return series.images[min(state.frame, len(series.images) - 1)], 0
    return state.image.info, state.frame


def session_items(session) -> list[ImageResult]:
    """The results of the study on screen (a `ReadingSession`), in hanging order, as the reader sees them."""
    items = []
    for identity in session.cells():
        shown, result = shown_file(session, identity), session.result_for(identity)
        if shown is not None and result is not None:
            info, frame = shown
            items.append(ImageResult(info.path, result, frame, info.source_format == "dicom"))
    return items


def view_capture(session, rgb: np.ndarray) -> ViewCapture | None:
    """The active cell's view, grabbed as `rgb`, with its source file, visible layers and orientation as shown."""
    shown = shown_file(session, session.active) if session.active else None
    if shown is None:
        return None
    info, state = shown[0], session.active_state
    layers = [] if session.layers.all_hidden else \
        [layer.name for layer in session.layers.for_image(state.image.info.identity) if layer.visible]
    markers = state.orientation_markers()
    orientation = (markers["right"], markers["bottom"]) if markers else None
    return ViewCapture(info.path, rgb, state.image.info.identity, ", ".join(layers), orientation,
                       info.source_format == "dicom")


def write_bundle(items: list[ImageResult], out: Path, capture: ViewCapture | None = None) -> Bundle:
    writer = BundleWriter(out)
    for item in items:
        writer.add(item)
    if capture is not None:
        writer.add_capture(capture)
    return writer.finish()
