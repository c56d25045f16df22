"""The base of every error RadLens reports to a reader: what failed (a file, a model, an image) and why."""

from __future__ import annotations


class RadLensError(Exception):
    """`what` failed because `reason` (one line a reader can act on)."""

    def __init__(self, what: object, reason: str) -> None:
        super().__init__(f"{what}: {reason}" if str(what) else reason)
        self.what, self.reason = what, reason
