"""De-identified copy of a study (PS3.15 Basic Application Confidentiality Profile) with dicognito.

dicognito replaces names, IDs, addresses and institution/equipment identifiers with made-up values,
shifts every date and time by one offset per export (intervals between exams survive) and remaps every
UID consistently (references between files stay intact). It keeps some attributes the basic profile
removes; those are deleted here (free-text descriptions and comments, private attributes, overlays, a
few more), listed in BASIC_PROFILE_REMOVED. Burned-in text cannot be removed from the header: files that
have it or may have it are flagged for a person to check.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

log = logging.getLogger("radlens.deid")

# Attributes the basic profile removes (PS3.15 Table E.1-1, action X) that dicognito leaves in place.
BASIC_PROFILE_REMOVED = (
    "StudyDescription", "SeriesDescription", "ImageComments", "PatientComments", "AdditionalPatientHistory",
    "RequestedProcedureDescription", "PerformedProcedureStepDescription", "ProtocolName", "DerivationDescription",
    "DeviceSerialNumber", "InstitutionalDepartmentName", "PhysiciansOfRecord", "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy", "RequestingPhysician", "AdmittingDiagnosesDescription", "PatientAge",
    "PatientSize", "PatientWeight", "Occupation", "MedicalRecordLocator", "EthnicGroup", "PatientTelephoneNumbers",
    "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName", "MilitaryRank", "BranchOfService",
    "CountryOfResidence", "RegionOfResidence", "PatientReligiousPreference", "ResponsiblePerson",
    "ResponsibleOrganization", "ScheduledProcedureStepDescription", "ReasonForStudy", "RequestedContrastAgent",
    "StudyComments", "InterpretationText", "TextString", "ContentCreatorName", "VerifyingObserverName",
    "PersonName", "ReviewerName", "IssuerOfPatientID", "PerformedLocation", "ScheduledStationName",
    "ReferencedPatientSequence", "ReferencedStudySequence", "RequestAttributesSequence",
    "AcquisitionComments", "ImagePresentationComments", "FrameComments", "DetectorID", "PlateID",
    "CassetteID", "GantryID", "GeneratorID", "DetectorDescription", "IconImageSequence",
)
# Modalities and SOP classes whose pixels often carry text (ultrasound, screen captures, photos).
TEXT_PRONE_MODALITIES = {"US", "SC", "OT", "ES", "XC", "GM", "SM", "DOC"}
BASIC_PROFILE = ("113100", "DCM", "Basic Application Confidentiality Profile")
DATES_MODIFIED = ("113107", "DCM", "Retain Longitudinal Temporal Information Modified Dates Option")


class DeidError(Exception):
    """Why the export could not be made, in one line."""


@dataclass
class DeidReport:
    written: list[Path] = field(default_factory=list)
    burned_in: list[tuple[Path, str]] = field(default_factory=list)  # output file, why it is flagged
    skipped: int = 0  # inputs that are not DICOM (never copied)


def burned_in_reason(ds: Dataset) -> str:
    """Why the pixels may hold identifying text ('' when nothing suggests it)."""
    flag = str(ds.get("BurnedInAnnotation", "")).upper()
    if flag == "YES":
        return "Burned In Annotation is YES"
    if flag != "NO":
        if str(ds.get("Modality", "")).upper() in TEXT_PRONE_MODALITIES:
            return f"{ds.get('Modality')} images often carry burned-in text and this one does not say it has none"
        if "SecondaryCapture" in str(getattr(ds.get("SOPClassUID"), "keyword", "")):
            return "a secondary capture that does not say it has no burned-in text"
    return ""


def _strip(ds: Dataset) -> None:
    for keyword in BASIC_PROFILE_REMOVED:
        if keyword in ds:
            delattr(ds, keyword)
    ds.remove_private_tags()
    for tag in [t for t in ds.keys() if 0x6000 <= t.group <= 0x601E and t.group % 2 == 0]:
        del ds[tag]  # overlays: graphics and comments that can spell a name
    for element in list(ds):
        if element.VR == "SQ":
            for item in element.value:
                _strip(item)


def _shift_times(ds: Dataset, seconds: int) -> None:
    """Every TM (time of day, wrapping at midnight) and the time of every DT later by `seconds`."""
    for element in list(ds):
        if element.VR == "SQ":
            for item in element.value:
                _shift_times(item, seconds)
        elif element.VR in ("TM", "DT") and element.value not in (None, ""):
            values = element.value if isinstance(element.value, (list, MultiValue)) else [element.value]
            element.value = [_shifted(str(v), element.VR, seconds) for v in values] if len(values) > 1 \
                else _shifted(str(values[0]), element.VR, seconds)


def _shifted(value: str, vr: str, seconds: int) -> str:
    """`value` (TM HHMMSS[.F] or DT YYYYMMDDHHMMSS[.F][&ZZXX]) later by `seconds`; unchanged when unparsable."""
    start = 8 if vr == "DT" else 0
    digits = value[start:start + 6]
    if len(digits) < 6 or not digits.isdigit() or (vr == "DT" and not value[:8].isdigit()):
        return value
    if vr == "TM":
        total = (int(digits[:2]) * 3600 + int(digits[2:4]) * 60 + int(digits[4:6]) + seconds) % 86400
        return f"{total // 3600:02d}{total % 3600 // 60:02d}{total % 60:02d}" + value[6:]
    try:
        moved = datetime.datetime.strptime(value[:14], "%Y%m%d%H%M%S") + datetime.timedelta(seconds=seconds)
    except ValueError:
        return value
    return moved.strftime("%Y%m%d%H%M%S") + value[14:]


def _mark(ds: Dataset) -> None:
    from pydicom.sr.coding import Code

    ds.PatientIdentityRemoved = "YES"
    ds.LongitudinalTemporalInformationModified = "MODIFIED"
    codes = []
    for value, scheme, meaning in (BASIC_PROFILE, DATES_MODIFIED):
        item = Dataset()
        code = Code(value, scheme, meaning)
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code.value, code.scheme_designator, code.meaning
        codes.append(item)
    ds.DeidentificationMethodCodeSequence = codes
    ds.DeidentificationMethod = "RadLens: dicognito + PS3.15 basic profile removals"


def deidentify(inputs: list[Path], out: Path, *, seed: str | None = None,
               progress: Callable[[int, int], None] | None = None) -> DeidReport:
    """De-identified copies of the DICOM files among `inputs` in `out`, named by their new SOP Instance UID.

    One anonymizer serves the whole export, so a patient, study and series keep one new identity and one
    date offset across files. `seed` makes the mapping repeatable (keep it secret); by default it is random.
    """
    from dicognito.anonymizer import Anonymizer

    seed = seed if seed is not None else secrets.token_hex(16)
    anonymizer = Anonymizer(seed=seed)
    # dicognito shifts times by whole hours, so minutes and seconds survive and, one export in 24, the whole
    # time of day: every time is shifted again by one offset of seconds per export (never a whole hour).
    seconds = 1 + int(hashlib.sha256(seed.encode()).hexdigest(), 16) % 3599
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise DeidError(f"{out} is not empty; choose a new folder so no identified file is mixed in")
    report = DeidReport()
    for number, path in enumerate(inputs, start=1):
        try:
            ds = pydicom.dcmread(path)
        except (pydicom.errors.InvalidDicomError, OSError, ValueError):
            report.skipped += 1
            continue
        if "SOPInstanceUID" not in ds:
            report.skipped += 1
            continue
        reason = burned_in_reason(ds)
        anonymizer.anonymize(ds)
        _shift_times(ds, seconds)
        _strip(ds)
        _mark(ds)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        target = out / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(target, enforce_file_format=True)
        report.written.append(target)
        if reason:
            report.burned_in.append((target, reason))
        if progress:
            progress(number, len(inputs))
    log.info("De-identified %d file(s) (%d flagged for burned-in text, %d not DICOM)", len(report.written),
             len(report.burned_in), report.skipped)
    return report
