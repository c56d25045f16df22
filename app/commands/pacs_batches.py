"""`radlens predict --studies UIDS.txt`: studies fetched from the PACS a batch at a time into the cache, each batch
read by either engine into one predictions.csv; a stopped run resumes (retrieves and the journal both do)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from app.io.errors import LoadProblem
from app.pacs.retrieve import cache_for, retrieve_study
from app.pacs.settings import PacsSettings

UID = re.compile(r"[0-9]+(\.[0-9]+)*")


def read_study_uids(path: Path) -> list[str]:
    """Study Instance UIDs, one per line (blank lines and # comments ignored); ValueError names a bad line."""
    uids: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if not UID.fullmatch(text) or len(text) > 64:
            raise ValueError(f"{path}:{number}: {text[:70]!r} is not a Study Instance UID")
        if text not in uids:
            uids.append(text)
    if not uids:
        raise ValueError(f"{path} lists no Study Instance UID")
    return uids


def _studies_read(out: Path) -> set[str]:
    """Cache folder names of the studies an earlier run into `out` read images of (its journal's keys)."""
    from app.commands.journal import Journal

    return {record.key.split("/", 1)[0] for record in Journal.saved(out)[1]}


def predict_studies(uids: list[str], out: Path, settings: PacsSettings, run: Callable[..., object], *,
                    batch_size: int = 10, say: Callable[[str], None] = lambda _text: None):
    """Fetch `batch_size` studies (resuming what an earlier run fetched in part), read them with
    `run(source, out, within=folders, keep_earlier=True)` (predict_folder or predict_folder_ray with their
    options bound), then the next batch. The cache's size limit evicts studies already read, never a row of
    predictions.csv. Returns the last batch's report (it counts every image of the run) with the studies that
    could not be fetched whole added to its problems."""
    if batch_size < 1:
        raise ValueError("--batch must be at least 1")
    cache = cache_for(settings)
    missing: list[LoadProblem] = []
    report, read_now, started = None, 0, time.monotonic()
    read_before, skipped = _studies_read(out), []
    queue, done = list(uids), 0
    while queue:
        chunk, queue = queue[:batch_size], queue[batch_size:]
        folders = []
        for uid in chunk:
            folder = cache.study_folder(uid)
            if folder.name in read_before and not (folder.is_dir() and cache.known_missing(uid)[0]):
                # Fetched whole and read (in part at least) by an earlier run: not asked of the PACS again;
                # still in the cache, its images not read yet are read; evicted, its rows are in the journal.
                skipped.append(uid)
                if folder.is_dir():
                    folders.append(folder)
                continue
            fetched = retrieve_study(settings, uid, cache=cache)
            if not fetched.complete:
                missing.append(LoadProblem(Path(f"study {uid}"), fetched.summary()))
            if fetched.folder.is_dir() and any(fetched.folder.glob("*.dcm")):
                folders.append(fetched.folder)
        done += len(chunk)
        say(f"studies {done} of {done + len(queue)} fetched ({len(folders)} of the last {len(chunk)} in the cache), "
            "reading them")
        if folders:
            report = run(cache.folder, out, within=folders, keep_earlier=True)
            read_now += report.images - report.resumed
            if report.started_afresh and read_before:  # the journal was another model's: read everything
                queue += [uid for uid in skipped if cache.study_folder(uid) not in folders]
                read_before, skipped = set(), []
    if report is None:  # nothing could be fetched at all
        from app.commands.predict import BatchReport

        report = BatchReport()
    # What this run read, over all its batches (each batch's report counts the earlier batches as resumed).
    report.resumed, report.seconds = report.images - read_now, time.monotonic() - started
    report.problems += missing
    return report
