"""De-identified export: no PHI value of the input survives anywhere in the output bytes, and the
new identities, dates and UIDs are consistent across the study (and with a prior of the same patient)."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from app.export.deid import BASIC_PROFILE_REMOVED, deidentify
from tests.dicom_factory import mg_study, write_dicom

ROOT = Path(__file__).resolve().parents[1]
PHI = dict(PatientName="ZZDOEXY^JANEQ", PatientID="PID-55821", PatientBirthDate="19580417",
           AccessionNumber="ACC-88123", InstitutionName="Saint Zqx Hospital", ReferringPhysicianName="ZZHOUSEQ^GREGQ",
           OperatorsName="ZZTECHQ^TOMQ", StudyID="STUDY8812", OtherPatientIDs="OPID7731",
           PatientAddress="17 Qwertz Lane", StudyDescription="Screening for ZZDOEXY", ImageComments="ZZDOEXY ok",
           DeviceSerialNumber="SN-99812", StationName="ZQMAMMO1", InstitutionAddress="5 Zqx Road",
           StudyDate="20240315", SeriesDate="20240315", ContentDate="20240315", StudyTime="101010",
           AcquisitionDateTime="20240315101112", BurnedInAnnotation="NO")


def phi_study(folder: Path) -> list[Path]:
    current = mg_study(folder / "ZZDOEXY_current", **PHI)
    prior = mg_study(folder / "ZZDOEXY_prior", views=("R CC",),
                     **{**PHI, "StudyDate": "20230301", "SeriesDate": "20230301", "ContentDate": "20230301",
                        "AccessionNumber": "ACC-77001", "AcquisitionDateTime": "20230301090000"})
    source = pydicom.dcmread(current[0])
    ultrasound = write_dicom(folder / "ZZDOEXY_us.dcm", np.zeros((32, 32), np.uint8), Modality="US",
                             StudyInstanceUID=source.StudyInstanceUID,
                             **{k: v for k, v in PHI.items() if k != "BurnedInAnnotation"})
    us = pydicom.dcmread(ultrasound)
    reference = Dataset()
    reference.ReferencedSOPClassUID, reference.ReferencedSOPInstanceUID = source.SOPClassUID, source.SOPInstanceUID
    us.SourceImageSequence = [reference]
    us.add_new(0x00091010, "LO", "ZZDOEXY private")  # a private element with PHI
    us.add_new(0x00090010, "LO", "ACME")
    request = Dataset()
    request.RequestedProcedureDescription, request.AccessionNumber = "for ZZDOEXY", "ACC-88123"
    us.RequestAttributesSequence = [request]
    us.save_as(ultrasound, enforce_file_format=True)
    return [*current, *prior, ultrasound]


def phi_values(paths: list[Path]) -> set[str]:
    values = set()
    for path in paths:
        ds = pydicom.dcmread(path)
        for keyword in PHI:
            if keyword != "BurnedInAnnotation":
                values.add(str(ds[keyword].value))
        values.update({str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID),
                       str(ds.file_meta.MediaStorageSOPInstanceUID)})
    values.update({"ZZDOEXY", "JANEQ", "ZZHOUSEQ", "ACC-77001", "19580417"})
    return values


def day(text: str) -> datetime.date:
    return datetime.datetime.strptime(text, "%Y%m%d").date()


def test_no_phi_value_survives_in_the_output_bytes(tmp_path):
    inputs = phi_study(tmp_path / "in")
    report = deidentify(inputs, tmp_path / "out")
    assert len(report.written) == len(inputs) == 6
    leaks = {}
    for path in report.written:
        data = path.read_bytes()
        found = [v for v in phi_values(inputs) if v.encode() in data]
        if found:
            leaks[path.name] = found
        assert "ZZDOEXY" not in path.name
    assert leaks == {}
    ds = pydicom.dcmread(report.written[0])
    assert ds.PatientIdentityRemoved == "YES" and ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"


def test_identities_dates_and_uids_are_consistent(tmp_path):
    inputs = phi_study(tmp_path / "in")
    report = deidentify(inputs, tmp_path / "out")
    before = {str(pydicom.dcmread(p).SOPInstanceUID): pydicom.dcmread(p) for p in inputs}
    after = [pydicom.dcmread(p) for p in report.written]
    assert len({ds.PatientID for ds in after}) == 1 and len({str(ds.PatientName) for ds in after}) == 1
    studies = {(str(ds.StudyDate), str(ds.StudyInstanceUID)) for ds in after}
    assert len(studies) == 2  # the current study (MG + US) and the prior, each with one new UID
    assert {uid for _, uid in studies}.isdisjoint({str(ds.StudyInstanceUID) for ds in before.values()})
    (prior_date, _), (current_date, _) = sorted(studies)
    assert (day(current_date) - day(prior_date)).days == (day("20240315") - day("20230301")).days
    shift = {(day(ds.StudyDate) - day(ds.PatientBirthDate)).days for ds in after}
    assert len(shift) == 2  # age at each exam kept: one offset for every date
    new_uids = {str(ds.SOPInstanceUID) for ds in after}
    us = next(ds for ds in after if ds.Modality == "US")
    assert us.SourceImageSequence[0].ReferencedSOPInstanceUID in new_uids  # references follow the remapping
    assert "RequestAttributesSequence" not in us or all(
        "RequestedProcedureDescription" not in item for item in us.RequestAttributesSequence)
    assert not any(element.tag.is_private for element in us)


def test_cli_flags_possible_burned_in_text_and_refuses_a_used_folder(tmp_path):
    phi_study(tmp_path / "in")
    (tmp_path / "in" / "notes.txt").write_text("ZZDOEXY called")
    env = {**os.environ}
    run = subprocess.run([sys.executable, "-m", "app", "deid", str(tmp_path / "in"), str(tmp_path / "out")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    flagged = [line for line in run.stdout.splitlines() if line.startswith("CHECK PIXELS")]
    assert len(flagged) == 1 and "US images often carry burned-in text" in flagged[0]  # MG says NO: not flagged
    assert "6 file(s) de-identified" in run.stdout and "1 file(s) skipped" in run.stdout
    assert "ZZDOEXY" not in run.stdout + run.stderr
    again = subprocess.run([sys.executable, "-m", "app", "deid", str(tmp_path / "in"), str(tmp_path / "out")],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "not empty" in again.stderr


def test_every_removed_keyword_is_a_dicom_keyword():
    assert [k for k in BASIC_PROFILE_REMOVED if pydicom.datadict.tag_for_keyword(k) is None] == []


def test_times_change_even_when_dicognito_s_hour_offset_is_whole_days(tmp_path):
    inputs = phi_study(tmp_path / "in")
    for seed in ("s20", "a", "b"):  # s20: dicognito's own offset is whole days, its times survive unchanged
        out = deidentify(inputs[:1], tmp_path / f"out-{seed}", seed=seed).written[0]
        ds = pydicom.dcmread(out)
        assert ds.StudyTime != "101010" and not str(ds.AcquisitionDateTime).endswith("101112"), seed
