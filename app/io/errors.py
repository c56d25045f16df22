"""Typed load errors with one line a reader can act on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.core.errors import RadLensError


class StudyLoadError(RadLensError):
    """A file that could not become an image; `reason` is one line for the problems list."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(path, reason)
        self.path = Path(path)


@dataclass(frozen=True)
class LoadProblem:
    """A file left out of a study, listed with its reason."""

    path: Path
    reason: str

    @classmethod
    def from_error(cls, error: StudyLoadError) -> LoadProblem:
        return cls(error.path, error.reason)


class NotDicomError(StudyLoadError):
    """The file is not DICOM at all (as opposed to a DICOM file that is broken)."""
