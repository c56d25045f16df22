"""Study searches: what the user asks for (name, ID, dates, modality, accession) and what comes back."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from app.pacs import dimse
from app.pacs.settings import PacsSettings

RETURN_KEYS = ("StudyInstanceUID", "PatientName", "PatientID", "StudyDate", "StudyDescription",
               "ModalitiesInStudy", "AccessionNumber", "NumberOfStudyRelatedInstances")
DATE = re.compile(r"^\d{8}$")


@dataclass(frozen=True)
class StudyQuery:
    patient_name: str = ""  # DICOM wildcards allowed: DOE^*
    patient_id: str = ""
    date_from: str = ""  # YYYYMMDD
    date_to: str = ""
    modality: str = ""
    accession: str = ""

    def __post_init__(self) -> None:
        for name in ("date_from", "date_to"):
            value = getattr(self, name).replace("-", "")
            if value and not DATE.match(value):
                raise ValueError(f"{name.replace('_', ' ')} must be a date as YYYYMMDD or YYYY-MM-DD, not {value!r}")
            object.__setattr__(self, name, value)
        if self.modality and not re.fullmatch(r"[A-Z0-9_ ]{1,16}", self.modality.upper()):
            raise ValueError(f"modality must be a code such as MG or CT, not {self.modality!r}")
        object.__setattr__(self, "modality", self.modality.upper())

    @property
    def date_range(self) -> str:
        if not (self.date_from or self.date_to):
            return ""
        return self.date_from if self.date_from == self.date_to else f"{self.date_from}-{self.date_to}"

    def filters(self) -> dict[str, str]:
        """The matching keys that are set, by DICOM keyword."""
        values = {"PatientName": self.patient_name, "PatientID": self.patient_id, "StudyDate": self.date_range,
                  "ModalitiesInStudy": self.modality, "AccessionNumber": self.accession}
        return {k: v for k, v in values.items() if v}


@dataclass(frozen=True)
class StudyMatch:
    study_uid: str
    patient_name: str
    patient_id: str
    study_date: str
    description: str
    modalities: str
    accession: str
    instances: int | None

    @classmethod
    def from_dataset(cls, ds: Dataset) -> StudyMatch:
        value = ds.get("ModalitiesInStudy", "")
        modalities = "\\".join(map(str, value)) if isinstance(value, MultiValue) else str(value)
        count = ds.get("NumberOfStudyRelatedInstances", None)
        return cls(str(ds.get("StudyInstanceUID", "")), str(ds.get("PatientName", "")), str(ds.get("PatientID", "")),
                   str(ds.get("StudyDate", "")), str(ds.get("StudyDescription", "")), modalities,
                   str(ds.get("AccessionNumber", "")), int(count) if count not in (None, "") else None)


def study_identifier(query: StudyQuery) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    for keyword in RETURN_KEYS:
        setattr(ds, keyword, "")
    for keyword, value in query.filters().items():
        setattr(ds, keyword, value)
    return ds


def find_studies(settings: PacsSettings, query: StudyQuery, *, web: bool = False) -> list[StudyMatch]:
    """Matching studies by C-FIND at study level, or by QIDO-RS when `web`; sorted by date, newest first."""
    if web:
        from app.pacs.web import qido_studies

        found = qido_studies(settings, query.filters(), RETURN_KEYS)
    else:
        found = dimse.find(settings, study_identifier(query))
    matches = [StudyMatch.from_dataset(ds) for ds in found]
    return sorted(matches, key=lambda m: (m.study_date, m.study_uid), reverse=True)


def study_instances(settings: PacsSettings, study_uid: str, *, web: bool = False) -> list[dimse.InstanceRef]:
    """Every instance of a study (IMAGE-level C-FIND, or QIDO-RS)."""
    if web:
        from app.pacs.web import qido_instances

        found = qido_instances(settings, study_uid)
    else:
        ds = Dataset()
        ds.QueryRetrieveLevel = "IMAGE"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = ds.SOPInstanceUID = ds.SOPClassUID = ""
        found = dimse.find(settings, ds)
    refs = [dimse.InstanceRef(study_uid, str(d.get("SeriesInstanceUID", "")), str(d.get("SOPInstanceUID", "")),
                              str(d.get("SOPClassUID", ""))) for d in found]
    return [r for r in refs if r.sop_instance and r.series]
