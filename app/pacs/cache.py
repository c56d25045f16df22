"""The local cache of retrieved and received studies: one folder per study, one file per instance,
a size limit (least recently used complete studies go first), a note of what a partial study lacks, and
a note on each study our storage SCP received (what the Incoming list shows, across restarts)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

MISSING_FILE = ".radlens-missing.json"  # in a study folder while instances are missing (hidden: the
# study scanner leaves hidden files out, so a partial study opens without a "not an image" problem)
UID = re.compile(r"^[0-9][0-9.]{0,63}$")
PART = ".part"
RECEIVED_FILE = ".radlens-received.json"  # in a study folder the storage SCP filed: the study's summary


class CacheFull(Exception):
    """The size limit leaves no room for an instance even after removing older studies."""


@dataclass(frozen=True)
class CachedStudy:
    uid: str
    folder: Path
    files: int
    size: int
    missing: int  # instances known to be missing (0: complete as far as we know)
    reason: str  # why they are missing


def _name(uid: str) -> str:
    """A folder or file name for a UID; anything that is not a plain UID is hashed (no path tricks)."""
    uid = str(uid)
    return uid if UID.match(uid) and ".." not in uid else "x" + hashlib.sha256(uid.encode()).hexdigest()[:32]


class StudyCache:
    def __init__(self, folder: Path, limit_bytes: int) -> None:
        self.folder, self.limit = Path(folder), int(limit_bytes)
        self._lock = threading.Lock()
        self._used: int | None = None

    def study_folder(self, study_uid: str) -> Path:
        return self.folder / _name(study_uid)

    def instance_path(self, study_uid: str, sop_uid: str) -> Path:
        return self.study_folder(study_uid) / f"{_name(sop_uid)}.dcm"

    def has(self, study_uid: str, sop_uid: str) -> bool:
        return self.instance_path(study_uid, sop_uid).is_file()

    def _used_locked(self) -> int:
        if self._used is None:
            self._used = sum(p.stat().st_size for p in self.folder.rglob("*.dcm")) if self.folder.is_dir() else 0
        return self._used

    def put(self, study_uid: str, sop_uid: str, encoded: bytes) -> Path:
        """Keep one instance (written whole, then renamed: a cut transfer never leaves half a file)."""
        path = self.instance_path(study_uid, sop_uid)
        with self._lock:
            self._make_room(len(encoded), keep=self.study_folder(study_uid))
            path.parent.mkdir(parents=True, exist_ok=True)
            old = path.stat().st_size if path.is_file() else 0
            partial = path.with_name("." + path.name + PART)  # hidden for the same reason
            partial.write_bytes(encoded)
            partial.replace(path)
            self._used = self._used_locked() + len(encoded) - old
        return path

    def _make_room(self, size: int, keep: Path) -> None:
        if self._used_locked() + size <= self.limit:
            return
        for study in sorted(self._studies_locked(), key=lambda s: s.folder.stat().st_mtime):
            if study.folder == keep or study.missing:
                continue  # never the study being retrieved, nor one a retry must resume
            shutil.rmtree(study.folder, ignore_errors=True)
            self._used = None
            if self._used_locked() + size <= self.limit:
                return
        raise CacheFull(f"the PACS cache in {self.folder} is full ({self.limit // 1_000_000} MB limit, "
                        f"{self._used_locked() // 1_000_000} MB used); raise cache_limit_mb or free space")

    def mark_missing(self, study_uid: str, missing: list[str], reason: str) -> Path:
        folder = self.study_folder(study_uid)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / MISSING_FILE
        path.write_text(json.dumps({"study": study_uid, "reason": reason, "missing_instances": missing}, indent=1))
        return path

    def clear_missing(self, study_uid: str) -> None:
        (self.study_folder(study_uid) / MISSING_FILE).unlink(missing_ok=True)
        self.study_folder(study_uid).touch(exist_ok=True)  # recently used

    def known_missing(self, study_uid: str) -> tuple[list[str], str]:
        path = self.study_folder(study_uid) / MISSING_FILE
        try:
            note = json.loads(path.read_text())
            return list(note.get("missing_instances", [])), str(note.get("reason", ""))
        except (OSError, ValueError, AttributeError):
            return [], ""

    def mark_received(self, study_uid: str, summary: dict[str, str]) -> None:
        """Note that the storage SCP filed this study, with its summary (date, name, modality, description)
        from the first instance received; later instances leave the note as it is."""
        path = self.study_folder(study_uid) / RECEIVED_FILE
        if not path.is_file():
            path.write_text(json.dumps({"study": study_uid, **summary}, indent=1), encoding="utf-8")

    def received_note(self, folder: Path) -> dict[str, str] | None:
        """The storage SCP's note in a study folder; None where there is none (a retrieved study) or it is unreadable."""
        try:
            note = json.loads((folder / RECEIVED_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return {k: str(v) for k, v in note.items()} if isinstance(note, dict) else None

    def received(self) -> list[tuple[CachedStudy, dict[str, str]]]:
        """The studies the storage SCP filed (and the cache still holds), most recently changed first."""
        found = []
        for study in self.studies():
            note = self.received_note(study.folder)
            try:
                changed = study.folder.stat().st_mtime
            except OSError:
                continue  # removed meanwhile
            if note is not None:
                found.append((changed, study, note))
        return [(study, note) for _, study, note in sorted(found, key=lambda t: -t[0])]

    def studies(self) -> list[CachedStudy]:
        with self._lock:
            return self._studies_locked()

    def _studies_locked(self) -> list[CachedStudy]:
        if not self.folder.is_dir():
            return []
        found = []
        for folder in sorted(p for p in self.folder.iterdir() if p.is_dir()):
            files = list(folder.glob("*.dcm"))
            missing, reason = [], ""
            if (folder / MISSING_FILE).is_file():
                try:
                    note = json.loads((folder / MISSING_FILE).read_text())
                    missing, reason = note.get("missing_instances", []), note.get("reason", "")
                except (OSError, ValueError, AttributeError):
                    missing, reason = ["?"], "unreadable note"
            found.append(CachedStudy(folder.name, folder, len(files), sum(f.stat().st_size for f in files),
                                     len(missing), reason))
        return found
