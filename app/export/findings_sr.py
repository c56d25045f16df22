"""AI findings of a study as a DICOM Structured Report: a TID 1500 measurement report written by highdicom.

Per image: the model, its version, every class score (a measurement group that references the image),
and the GLAM patch the model examined as a closed polyline region on that image. highdicom has no
Mammography CAD SR (TID 4000) builder, so MG studies get the same TID 1500 report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.sr.coding import Code
from pydicom.sr.codedict import codes

from app import __version__
from app.export.files import save_whole

SCHEME = "99RADLENS"  # private coding scheme for concepts DICOM has no code for
UNITLESS = Code("1", "UCUM", "no units")
MAMMOGRAPHY = Code("71651007", "SCT", "Mammography")
IMAGING = Code("363679005", "SCT", "Imaging")
FINDING = Code("404684003", "SCT", "Clinical finding")
EXAMINED_REGION = Code("glam-patch", SCHEME, "Region the model examined closely")


class FindingsSrError(Exception):
    """Why the report could not be written, in one line."""


@dataclass(frozen=True)
class ImageFindings:
    source: Path  # the DICOM image the scores are about
    classes: tuple[str, ...]
    scores: tuple[float, ...]  # per class, 0..1
    patch: tuple[float, float, float, float] | None = None  # x, y, width, height in image pixels
    patch_score: float | None = None


def findings_from_result(source: Path, result) -> ImageFindings:
    """The findings of one `app.inference.results.InferenceResult` on the DICOM image `source`."""
    if result.probabilities is None:
        raise FindingsSrError(f"{Path(source).name}: the model gave no class scores ({result.task})")
    patch = result.patches[0] if result.patches else None
    return ImageFindings(Path(source), tuple(result.classes), tuple(float(p) for p in result.probabilities),
                         patch=None if patch is None else (patch.x, patch.y, patch.width, patch.height))


def score_code(class_name: str) -> Code:
    return Code(f"score-{class_name}"[:16], SCHEME, f"AI score: {class_name}")


def write_findings_sr(findings: list[ImageFindings], out: Path, *, model: str, version: str) -> Path:
    """One report for images of one study; FindingsSrError for bad input (never half a file)."""
    import highdicom as hd

    if not findings:
        raise FindingsSrError("no findings to report")
    images = []
    for item in findings:
        try:
            images.append(pydicom.dcmread(item.source, stop_before_pixels=True))
        except (pydicom.errors.InvalidDicomError, OSError) as error:
            raise FindingsSrError(f"a findings report needs DICOM source images; {Path(item.source).name} "
                                  f"is not one ({type(error).__name__})") from None
        if len(item.classes) != len(item.scores) or not item.classes:
            raise FindingsSrError(f"{Path(item.source).name}: {len(item.classes)} classes but "
                                  f"{len(item.scores)} scores")
        if not all(np.isfinite(s) for s in item.scores):
            raise FindingsSrError(f"{Path(item.source).name}: a score is not a number")
    if len({str(ds.get("StudyInstanceUID", "")) for ds in images}) != 1:
        raise FindingsSrError("one report covers one study; these images come from several")
    algorithm = hd.sr.AlgorithmIdentification(name=model, version=version or "unknown")
    groups = []
    for number, (item, ds) in enumerate(zip(findings, images, strict=True), start=1):
        measurements = [hd.sr.Measurement(name=score_code(name), value=float(score), unit=UNITLESS,
                                          algorithm_id=algorithm)
                        for name, score in zip(item.classes, item.scores, strict=True)]
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"{model} scores, image {number}"),
            finding_type=FINDING, algorithm_id=algorithm, measurements=measurements,
            source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(ds)]))
        if item.patch is not None:
            x, y, w, h = (float(v) for v in item.patch)
            if w <= 0 or h <= 0:
                raise FindingsSrError(f"{Path(item.source).name}: the patch has no area")
            corners = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]], dtype=float)
            region = hd.sr.ImageRegion(graphic_type=hd.sr.GraphicTypeValues.POLYLINE, graphic_data=corners,
                                       source_image=hd.sr.SourceImageForRegion.from_source_image(ds))
            patch_measurements = [] if item.patch_score is None else [hd.sr.Measurement(
                name=Code("patch-score", SCHEME, "AI score of the region"), value=float(item.patch_score),
                unit=UNITLESS, algorithm_id=algorithm)]
            groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"{model} patch, image {number}"),
                referenced_region=region, finding_type=EXAMINED_REGION, algorithm_id=algorithm,
                measurements=patch_measurements or None))
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name=f"RadLens {model}", manufacturer_name="RadLens", model_name=f"{model} {version}"))
    modalities = {str(ds.get("Modality", "")) for ds in images}
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=MAMMOGRAPHY if modalities == {"MG"} else IMAGING, imaging_measurements=groups)
    try:
        sr = hd.sr.Comprehensive3DSR(
            evidence=images, content=report, series_instance_uid=hd.UID(), series_number=901,
            sop_instance_uid=hd.UID(), instance_number=1, manufacturer="RadLens", is_complete=True,
            series_description=f"AI findings: {model} {version} (computer-generated, not a diagnosis)"[:64])
    except (ValueError, TypeError, AttributeError) as error:
        raise FindingsSrError(f"highdicom refused the report: {error}") from None
    sr.SoftwareVersions = __version__
    return save_whole(sr, out)
