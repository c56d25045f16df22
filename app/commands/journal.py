"""Resumable predict runs: one line per finished image in OUTPUT/.radlens-predict.jsonl, for both engines.

A line is appended (and flushed) once an image's mask and picture are written, whatever the outcome (a
file that failed is finished too: it is listed again, not read again). A run that is stopped or killed
restarts where it was: images with a line whose files are unchanged (size and modification time) are
not read again, and predictions.csv is assembled from the lines. The first line holds the run's
settings (model, pictures, exam list, the installed models' weights); other settings start afresh, as
does a run that must see every result (`resume=False`: predict --send).
A last line cut short by a crash is ignored.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from app.core.study import Series

JOURNAL_NAME = ".radlens-predict.jsonl"
log = logging.getLogger("radlens.predict")


@dataclass(frozen=True)
class ImageRecord:
    """One finished image: its predictions.csv row (None when it failed), its task and the task's own
    table's (columns, row) when the task has one (GLAM), what went wrong."""

    key: str  # the image's name in every output (relative to INPUT)
    stamp: str  # its files' sizes and modification times
    row: dict[str, str] | None = None
    task: str | None = None
    own: tuple[list[str], dict[str, str]] | None = None
    problems: tuple[tuple[str, str], ...] = ()  # (path, reason)

    def to_json(self) -> str:
        return json.dumps({"key": self.key, "stamp": self.stamp, "row": self.row, "task": self.task,
                           "own": self.own, "problems": [list(p) for p in self.problems]})

    @classmethod
    def from_json(cls, text: str) -> ImageRecord:
        raw = json.loads(text)
        own = tuple(raw["own"]) if raw["own"] is not None else None
        return cls(raw["key"], raw["stamp"], raw["row"], raw["task"], own, tuple(tuple(p) for p in raw["problems"]))


def series_stamp(series: Series) -> str:
    """Sizes and modification times of a series' files: a file replaced since is read again."""
    parts = []
    for info in series.images:
        try:
            status = info.path.stat()
            parts.append(f"{status.st_size}:{status.st_mtime_ns}")
        except OSError:
            parts.append("-")
    return "|".join(parts)


class Journal:
    """The finished images of this OUTPUT folder's run; `add` appends one as soon as it is done."""

    def __init__(self, out: Path, settings: dict, resume: bool = True) -> None:
        self.path = out / JOURNAL_NAME
        self.settings = json.loads(json.dumps(settings))  # as it reads back
        self.records: dict[str, ImageRecord] = {}
        self.started_afresh = False
        if self.path.is_file() and resume:
            self._read()
        if not self.records:
            self.path.write_text(json.dumps({"settings": self.settings}) + "\n", encoding="utf-8")
        self._handle = open(self.path, "a", encoding="utf-8")

    def finished(self, key: str, stamp: str) -> ImageRecord | None:
        record = self.records.get(key)
        return record if record is not None and record.stamp == stamp else None

    def add(self, record: ImageRecord) -> None:
        self.records[record.key] = record
        self._handle.write(record.to_json() + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()

    @staticmethod
    def saved(out: Path) -> tuple[dict | None, list[ImageRecord]]:
        """The settings and the finished images of the journal in `out`, as written (none when there is none)."""
        try:
            with open(out / JOURNAL_NAME, encoding="utf-8", errors="surrogateescape") as handle:
                lines = handle.read().split("\n")
        except OSError:
            return None, []
        try:
            settings = json.loads(lines[0]).get("settings")
        except (ValueError, AttributeError):
            settings = None
        records = []
        for line in lines[1:]:
            try:
                records.append(ImageRecord.from_json(line))
            except (ValueError, KeyError, TypeError):
                continue  # the empty tail, or a line cut short by a crash
        return settings, records

    def _read(self) -> None:
        settings, records = self.saved(self.path.parent)
        if settings != self.settings:
            log.info("%s was written with other settings; starting afresh", self.path)
            self.started_afresh = True
            return
        self.records = {record.key: record for record in records}
