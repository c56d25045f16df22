"""Retrieve a study into the cache (C-GET, C-MOVE to our storage SCP, or WADO-RS): resumable, with progress,
and when the PACS fails a partial study whose note says which instances are missing and why."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from app.pacs.cache import CacheFull, StudyCache
from app.pacs.dimse import InstanceRef, PacsError, get_instances, move_instances
from app.pacs.query import study_instances
from app.pacs.security import ref
from app.pacs.settings import PacsSettings

log = logging.getLogger("radlens.pacs")
OUT_OF_RESOURCES, REFUSED = 0xA700, 0xC211

Progress = Callable[[int, int], None]  # (instances in the cache, instances in the study)


@dataclass
class RetrieveReport:
    study_uid: str
    folder: Path
    total: int | None  # instances in the study (None: the PACS could not say)
    already: int = 0  # in the cache before, not fetched again
    fetched: int = 0
    missing: list[str] = field(default_factory=list)  # SOP Instance UIDs still missing
    problem: str = ""

    @property
    def complete(self) -> bool:
        return not self.problem and not self.missing and self.total is not None

    def summary(self) -> str:
        have = self.already + self.fetched
        if self.complete:
            return (f"study complete: {have} instance(s) in {self.folder} ({self.fetched} retrieved, "
                    f"{self.already} already there)")
        total = "an unknown number of" if self.total is None else str(self.total)
        lacking = f"{len(self.missing)} missing" if self.missing or self.total is not None else "missing unknown"
        return (f"partial study: {have} of {total} instance(s) in {self.folder} ({lacking}); {self.problem}. "
                f"Run the same command again to resume.")


def cache_for(settings: PacsSettings) -> StudyCache:
    return StudyCache(settings.cache_folder, settings.cache_limit_mb * 1_000_000)


class Cancelled(Exception):
    """The user stopped the retrieval."""


def retrieve_study(settings: PacsSettings, study_uid: str, *, web: bool = False, progress: Progress | None = None,
                   cache: StudyCache | None = None, cancelled: Callable[[], bool] | None = None) -> RetrieveReport:
    """Everything of the study not yet in the cache; never raises for PACS trouble (see `problem`).

    DIMSE retrieval is by C-GET, or by C-MOVE to our storage SCP when the settings say `retrieve_by_move`.
    `cancelled()` is asked after each instance; Ctrl+C (KeyboardInterrupt) counts as a cancel too.
    Either way what arrived stays, and the next call resumes.
    """
    cache = cache or cache_for(settings)
    report = RetrieveReport(study_uid, cache.study_folder(study_uid), None)
    try:
        instances = study_instances(settings, study_uid, web=web)
    except PacsError as error:
        report.missing, _ = cache.known_missing(study_uid)
        report.already = len(list(report.folder.glob("*.dcm")))
        report.problem = f"cannot list the study's instances: {error}"
        log.warning("Retrieve of study %s: %s", ref(study_uid), report.problem)
        return report
    if not instances:
        report.problem = "the PACS has no instances of this study"
        return report
    report.total = len(instances)
    wanted = {i.sop_instance: i for i in instances}
    todo = [i for i in instances if not cache.has(study_uid, i.sop_instance)]
    report.already = report.total - len(todo)
    full: list[str] = []
    received: set[str] = set()

    def keep(ds: Dataset, encoded: bytes) -> int:
        sop = str(ds.get("SOPInstanceUID", ""))
        if sop not in wanted:
            return REFUSED  # never file something we did not ask for
        try:
            cache.put(study_uid, sop, encoded)
        except CacheFull as error:
            full.append(str(error))
            return OUT_OF_RESOURCES
        except OSError as error:
            full.append(f"cannot write to the cache: {error}")
            return OUT_OF_RESOURCES
        received.add(sop)
        return 0x0000

    def after_each(instance: InstanceRef) -> None:
        if full:
            raise CacheFull(full[0])
        if cache.has(study_uid, instance.sop_instance):  # C-MOVE: our storage SCP filed it
            received.add(instance.sop_instance)
        report.fetched = len(received)
        if progress:
            progress(report.already + report.fetched, report.total)
        if cancelled and cancelled():
            raise Cancelled

    if progress:
        progress(report.already, report.total)
    try:
        if web:
            _wado(settings, todo, keep, after_each)
        elif todo and settings.retrieve_by_move:
            _move(settings, cache, todo, after_each)
        elif todo:
            get_instances(settings, todo, keep, after_each)
    except (PacsError, CacheFull) as error:
        report.problem = str(error)
    except (Cancelled, KeyboardInterrupt):
        report.problem = "cancelled"
    report.fetched = sum(cache.has(study_uid, i.sop_instance) for i in todo)
    report.missing = [i.sop_instance for i in instances if not cache.has(study_uid, i.sop_instance)]
    if report.missing and not report.problem:
        report.problem = "the PACS did not send them"
        if settings.retrieve_by_move and not web:
            report.problem += (f" to our storage SCP (does the PACS know {settings.calling_ae} at this computer's "
                               f"address, port {settings.scp_port}?)")
    if report.missing:
        cache.mark_missing(study_uid, report.missing, report.problem)
        log.warning("Retrieve of study %s partial: %d of %d missing (%s)", ref(study_uid), len(report.missing),
                    report.total, report.problem)
    else:
        cache.clear_missing(study_uid)
        log.info("Retrieve of study %s complete: %d fetched, %d already cached", ref(study_uid), report.fetched,
                 report.already)
    return report


def _move(settings: PacsSettings, cache: StudyCache, todo: list[InstanceRef], after_each) -> None:
    """C-MOVE to our storage SCP: a temporary one for this retrieval, or the one already listening on the
    port (the window's Incoming), which files into the same cache."""
    from app.pacs.scp import StorageServer

    server = StorageServer(settings, cache)
    try:
        server.start()
    except OSError:
        server = None
        log.info("Storage SCP port in use; C-MOVE delivers to the SCP already listening there")
    try:
        move_instances(settings, todo, after_each)
    finally:
        if server is not None:
            server.stop()


def _wado(settings: PacsSettings, todo: list[InstanceRef], keep, after_each) -> None:
    from app.pacs.web import wado_instance

    for instance in todo:
        ds = wado_instance(settings, instance.study, instance.series, instance.sop_instance)
        if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
            ds.file_meta = getattr(ds, "file_meta", None) or Dataset()
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        if keep(ds, buffer.getvalue()) == REFUSED:
            raise PacsError("the WADO-RS answer was not the instance asked for")
        after_each(instance)
