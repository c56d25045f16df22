"""AI results as DICOM: the findings SR (TID 1500) and the secondary capture, read back and sent to Orthanc."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
import pytest

from app.export.findings_sr import FindingsSrError, ImageFindings, write_findings_sr
from app.export.secondary_capture import LABEL, SecondaryCaptureError, write_secondary_capture
from tests.dicom_factory import mg_study, write_dicom

CLASSES = ("benign", "malignant")


@pytest.fixture
def study(tmp_path):
    return mg_study(tmp_path / "study", views=("R CC", "L CC"), PatientOrientation=["A", "L"])


def test_findings_sr_reads_back_with_scores_patch_and_references(study, tmp_path):
    findings = [ImageFindings(study[0], CLASSES, (0.25, 0.75), patch=(5, 6, 20, 10), patch_score=0.9),
                ImageFindings(study[1], CLASSES, (0.9, 0.1))]
    out = write_findings_sr(findings, tmp_path / "out" / "sr.dcm", model="glam-mias", version="1.2")
    sr = hd.sr.srread(out)
    sources = [pydicom.dcmread(p) for p in study]
    assert sr.SOPClassUID == pydicom.uid.Comprehensive3DSRStorage
    assert sr.StudyInstanceUID == sources[0].StudyInstanceUID and sr.PatientID == sources[0].PatientID
    assert sr.SeriesInstanceUID != sources[0].SeriesInstanceUID and "not a diagnosis" in sr.SeriesDescription
    groups = sr.content.get_image_measurement_groups()
    assert len(groups) == 2
    for group, item, source in zip(groups, findings, sources):
        assert {m.name.meaning: round(m.value, 6) for m in group.get_measurements()} == \
               {f"AI score: {c}": s for c, s in zip(item.classes, item.scores)}
        assert [s.referenced_sop_instance_uid for s in group.source_images] == [source.SOPInstanceUID]
    (roi_group,) = sr.content.get_planar_roi_measurement_groups()
    assert roi_group.roi.GraphicType == "POLYLINE"
    assert np.allclose(np.reshape(roi_group.roi.GraphicData, (-1, 2)), [[5, 6], [25, 6], [25, 16], [5, 16], [5, 6]])
    assert roi_group.roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == \
           sources[0].SOPInstanceUID
    assert [m.value for m in roi_group.get_measurements()] == [pytest.approx(0.9)]
    text = str(sr)
    assert "glam-mias" in text and "1.2" in text  # the algorithm's name and version


def test_findings_sr_refuses_bad_input_with_a_message(study, tmp_path):
    other = mg_study(tmp_path / "other", views=("R CC",))
    png = tmp_path / "view.png"
    png.write_bytes(b"\x89PNG not really")
    cases = [([ImageFindings(png, CLASSES, (0.5, 0.5))], "not one"),
             ([ImageFindings(study[0], CLASSES, (0.5,))], "2 classes but 1 scores"),
             ([ImageFindings(study[0], CLASSES, (0.5, float("nan")))], "not a number"),
             ([ImageFindings(study[0], CLASSES, (0.5, 0.5)), ImageFindings(other[0], CLASSES, (0.5, 0.5))],
              "one study"),
             ([ImageFindings(study[0], CLASSES, (0.5, 0.5), patch=(1, 1, 0, 5))], "no area"),
             ([], "no findings")]
    for findings, message in cases:
        with pytest.raises(FindingsSrError, match=message):
            write_findings_sr(findings, tmp_path / "sr.dcm", model="m", version="1")
    assert not list(tmp_path.glob("sr.dcm*"))  # nothing half-written


def test_secondary_capture_is_labelled_derived_and_never_the_original(study, tmp_path):
    view = np.random.default_rng(1).integers(0, 255, (200, 150, 3), dtype=np.uint8)
    out = write_secondary_capture(study[0], view, tmp_path / "sc.dcm", description="GLAM saliency, patch map")
    sc, source = pydicom.dcmread(out), pydicom.dcmread(study[0])
    assert sc.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
    assert list(sc.ImageType) == ["DERIVED", "SECONDARY"] and sc.BurnedInAnnotation == "YES"
    assert sc.StudyInstanceUID == source.StudyInstanceUID
    assert sc.SOPInstanceUID != source.SOPInstanceUID and sc.SeriesInstanceUID != source.SeriesInstanceUID
    assert "derived" in sc.SeriesDescription and sc.ImageComments == LABEL
    assert "GLAM saliency" in sc.DerivationDescription
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert list(sc.PatientOrientation) == ["A", "L"] and sc.PhotometricInterpretation == "RGB"
    pixels = sc.pixel_array
    assert pixels.shape == view.shape
    strip = np.flatnonzero((pixels != view).any(axis=(1, 2)))
    assert 0 < strip.max() < 40 and np.array_equal(pixels[40:], view[40:])  # the label strip, nothing else
    assert (pixels[:strip.max()] > 200).any()  # the label text is drawn


def test_secondary_capture_without_orientation_and_bad_input(tmp_path):
    plain = write_dicom(tmp_path / "ct.dcm", np.zeros((32, 32), np.uint16), Modality="CT")
    out = write_secondary_capture(plain, np.zeros((32, 32, 3), np.uint8), tmp_path / "sc.dcm")
    assert pydicom.dcmread(out).PatientOrientation in ("", None)  # unknown, not made up
    for bad in (np.zeros((32, 32), np.uint8), np.zeros((32, 32, 3), np.float32), np.zeros((8, 8, 3), np.uint8)):
        with pytest.raises(SecondaryCaptureError, match="expected an RGB view"):
            write_secondary_capture(plain, bad, tmp_path / "bad.dcm")
    with pytest.raises(SecondaryCaptureError, match="not DICOM"):
        write_secondary_capture(tmp_path / "missing.dcm", np.zeros((32, 32, 3), np.uint8), tmp_path / "bad.dcm")


def test_orthanc_accepts_the_report_and_the_capture(orthanc, study, tmp_path):
    from app.pacs.send import send_files
    from app.pacs.settings import PacsSettings

    sr = write_findings_sr([ImageFindings(study[0], CLASSES, (0.3, 0.7), patch=(1, 2, 8, 8))], tmp_path / "sr.dcm",
                           model="glam", version="1")
    sc = write_secondary_capture(study[0], np.zeros((64, 48, 3), np.uint8), tmp_path / "sc.dcm")
    settings = PacsSettings(port=orthanc.dicom_port, called_ae=orthanc.aet, timeout_s=10.0)
    assert send_files(settings, [*study, sr, sc]) == []
    stored = {orthanc.get(f"/instances/{i}/simplified-tags")["SOPClassUID"] for i in orthanc.get("/instances")}
    assert {pydicom.uid.Comprehensive3DSRStorage, pydicom.uid.SecondaryCaptureImageStorage} <= stored
    assert len(orthanc.get("/studies")) == 1  # they joined the source study


def test_findings_from_an_inference_result(study, tmp_path):
    from app.core.layers import Box
    from app.export.findings_sr import findings_from_result
    from app.inference.results import InferenceResult

    result = InferenceResult("id", "mg-glam-lite@1", "classification", CLASSES, "cpu",
                             probabilities=np.array([0.4, 0.6]), patches=(Box(3, 4, 10, 12),))
    item = findings_from_result(study[0], result)
    assert item == ImageFindings(study[0], CLASSES, (0.4, 0.6), patch=(3, 4, 10, 12))
    out = write_findings_sr([item], tmp_path / "sr.dcm", model="mg-glam-lite", version="1")
    assert len(hd.sr.srread(out).content.get_planar_roi_measurement_groups()) == 1
    with pytest.raises(FindingsSrError, match="no class scores"):
        findings_from_result(study[0], InferenceResult("id", "seg@1", "segmentation", ("lesion",), "cpu"))
