"""Studies: images grouped the way a reader expects to open them, and the series shown in one viewport."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from app.core.image import ImageInfo
from app.core.text import printable, unicode_key

# Modalities whose single-frame files of one series are slices of a stack (one viewport, frame slider).
STACKED_MODALITIES = {"MR", "CT", "PT", "NM"}
SIDE_BY_SIDE = "side-by-side:"  # key prefix of several studies read together
COMPARISON = "comparison:"  # key prefix of a mammogram read beside its prior
MAMMO_NAME_TAG = re.compile(r"(?:^|[^A-Za-z])([LR])[-_ ]?(CC|MLO)(?:$|[^A-Za-z])", re.IGNORECASE)


@dataclass(frozen=True)
class Series:
    """What one viewport shows: one image file, or single-frame slices of one series in order."""

    images: tuple[ImageInfo, ...]

    @property
    def first(self) -> ImageInfo:
        return self.images[0]

    @property
    def identity(self) -> str:
        return "|".join(info.identity for info in self.images)

    @property
    def label(self) -> str:
        return self.first.label


@dataclass(frozen=True)
class Study:
    """One patient visit as the reader sees it in the study list."""

    key: str
    title: str
    series: tuple[Series, ...]
    prior: Study | None = None  # a mammogram compared with an earlier one: its series follow the current's

    @property
    def images(self) -> tuple[ImageInfo, ...]:
        return tuple(info for series in self.series for info in series.images)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(sorted({info.modality for info in self.images if info.modality}))

    @property
    def is_mammography(self) -> bool:
        return any(info.is_mammogram for info in self.images)

    @property
    def is_side_by_side(self) -> bool:
        """Several studies read together (see side_by_side)."""
        return self.key.startswith(SIDE_BY_SIDE)

    @property
    def patient_name(self) -> str:
        return self.series[0].first.patient_name if self.series else ""

    @property
    def patient_id(self) -> str:
        return self.series[0].first.patient_id if self.series else ""

    @property
    def date(self) -> str:
        """The study date as YYYY-MM-DD ("" when no image says it)."""
        raw = next((info.study_date for info in self.images if info.study_date), "")
        return f"{raw[:4]}-{raw[4:6]}-{raw[6:8]}" if len(raw) == 8 and raw.isdigit() else raw


def side_by_side(studies: list[Study]) -> Study:
    """Several studies read together, one viewport per series (e.g. loose ultrasound, MRI or radiograph
    images); a mammography study keeps its own hanging and is never merged."""
    if any(study.is_mammography for study in studies):
        raise ValueError("a mammography study hangs on its own")
    if len(studies) == 1:
        return studies[0]
    return Study(key=SIDE_BY_SIDE + "+".join(study.key for study in studies),
                 title=f"{len(studies)} studies side by side: " + ", ".join(study.title for study in studies),
                 series=tuple(series for study in studies for series in study.series))


def priors_of(study: Study, candidates: list[Study]) -> list[Study]:
    """Earlier studies of the same patient (same non-empty Patient ID) sharing a modality, newest first.
    A study without a date is never taken for a prior: the order would be a guess."""
    if not study.patient_id or not study.date:
        return []
    found = [c for c in candidates if c.key != study.key and c.prior is None and not c.is_side_by_side
             and c.patient_id == study.patient_id and c.date and c.date < study.date
             and set(c.modalities) & set(study.modalities)]
    return sorted(found, key=lambda c: c.date, reverse=True)


def with_prior(current: Study, prior: Study) -> Study:
    """A mammogram and its prior read together (hanging.comparison_hanging places them)."""
    if not (current.is_mammography and prior.is_mammography):
        raise ValueError("only mammograms hang beside their prior; other studies are read side by side")
    return Study(key=f"{COMPARISON}{current.key}+{prior.key}", title=f"{current.title} with prior {prior.date}",
                 series=current.series + prior.series, prior=prior)


def can_read_side_by_side(studies: list[Study], most: int = 4) -> bool:
    """Whether opening `studies` should show them together: 2 to `most` single-image studies, no mammogram."""
    return 2 <= len(studies) <= most and all(len(s.series) == 1 and not s.is_mammography for s in studies)


def mammo_tag_from_name(name: str) -> tuple[str, str, str] | None:
    """(laterality, view, exam prefix) from names like `0_L-CC.png`, `L_CC`, `patient7 RMLO`."""
    stem = Path(name).stem
    match = MAMMO_NAME_TAG.search(stem)
    if not match:
        return None
    prefix = stem[: match.start()].strip(" _-.")
    return match.group(1).upper(), match.group(2).upper(), prefix


def group_into_studies(images: list[ImageInfo]) -> list[Study]:
    """DICOM files by StudyInstanceUID; other files by folder and the exam prefix of their names.

    A raster file whose name carries no view tag is a study of its own.
    """
    groups: dict[str, list[ImageInfo]] = defaultdict(list)
    for info in images:
        groups[_study_key(info)].append(info)
    studies = [Study(key=key, title=_title(members), series=_series_of(members)) for key, members in groups.items()]
    return sorted(studies, key=_list_order)


def _list_order(study: Study) -> tuple[str, int]:
    """By title, except that studies whose titles differ only by their date (one patient's current and
    priors, say) come newest first: the study shown when a folder opens is the one to read."""
    raw = next((info.study_date for info in study.images if info.study_date), "")
    title = study.title.removesuffix(raw).rstrip() if raw else study.title
    return title.lower(), -int(raw) if raw.isdigit() else 0


def _study_key(info: ImageInfo) -> str:
    if info.source_format == "dicom" and info.study_uid:
        return f"dicom:{info.study_uid}"
    if info.source_format == "dicom":
        return f"file:{info.identity}"
    tag = mammo_tag_from_name(info.path.name)
    if tag is None:
        return f"file:{info.identity}"
    return f"folder:{unicode_key(str(info.path.parent.resolve()))}:{tag[2]}"


def _title(members: list[ImageInfo]) -> str:
    first = members[0]
    if first.source_format == "dicom":
        parts = [first.study_description or "DICOM study", first.study_date]
        modalities = "/".join(sorted({m.modality for m in members if m.modality}))
        return " ".join(p for p in (modalities, *parts) if p)
    if len(members) == 1 and not mammo_tag_from_name(first.path.name):
        return printable(first.path.name)
    tag = mammo_tag_from_name(first.path.name)
    exam = f" exam {tag[2]}" if tag and tag[2] else ""
    return f"{printable(first.path.parent.name)}{exam}"


def _series_of(members: list[ImageInfo]) -> tuple[Series, ...]:
    stacks: dict[tuple, list[ImageInfo]] = defaultdict(list)
    singles: list[Series] = []
    for info in members:
        if info.modality in STACKED_MODALITIES and info.frames == 1 and info.series_uid:
            stacks[(info.series_uid, info.rows, info.columns)].append(info)
        else:
            singles.append(Series((info,)))
    for slices in stacks.values():
        slices.sort(key=lambda i: (i.instance_number is None, i.instance_number or 0, i.path.name))
        singles.append(Series(tuple(slices)))
    singles.sort(key=lambda s: (s.first.series_uid or "", s.first.instance_number or 0, s.first.path.name))
    return tuple(singles)
