"""The patient's earlier studies on the PACS: found by Patient ID and modality before the current study's date,
and the newest fetched into the cache (resumable, as every retrieve)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from app.core.study import Study
from app.pacs.query import StudyMatch, StudyQuery, find_studies
from app.pacs.retrieve import RetrieveReport, retrieve_study
from app.pacs.settings import PacsSettings


@dataclass
class PriorFetch:
    """What asking the PACS for a prior gave: the match fetched (None when there is none) and its retrieve."""

    match: StudyMatch | None
    report: RetrieveReport | None = None


def prior_matches(settings: PacsSettings, study: Study, *, web: bool = False) -> list[StudyMatch]:
    """Studies of the same Patient ID with one of `study`'s modalities, dated before it, newest first.
    None without a Patient ID or a date: a prior found by name alone, or undated, would be a guess."""
    compact = study.date.replace("-", "")
    if not study.patient_id or len(compact) != 8 or not compact.isdigit():
        return []
    day_before = (date(int(compact[:4]), int(compact[4:6]), int(compact[6:])) - timedelta(days=1)).strftime("%Y%m%d")
    own = {info.study_uid for info in study.images}
    found: dict[str, StudyMatch] = {}
    for modality in study.modalities or ("",):
        query = StudyQuery(patient_id=study.patient_id, date_to=day_before, modality=modality)
        for match in find_studies(settings, query, web=web):
            if match.study_uid not in own and match.patient_id == study.patient_id and match.study_date < compact:
                found[match.study_uid] = match
    return sorted(found.values(), key=lambda m: m.study_date, reverse=True)


def fetch_newest_prior(settings: PacsSettings, study: Study, *, web: bool = False,
                       cancelled: Callable[[], bool] | None = None) -> PriorFetch:
    """The newest prior into the cache (what is already there is not fetched again). PacsError when the
    PACS cannot be searched; a retrieve that stops half way says so in its report."""
    matches = prior_matches(settings, study, web=web)
    if not matches:
        return PriorFetch(None)
    return PriorFetch(matches[0], retrieve_study(settings, matches[0].study_uid, web=web, cancelled=cancelled))
