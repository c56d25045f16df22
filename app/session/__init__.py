"""The reading session: the one place that holds what the reader has open, sees and was told (Qt-free)."""

from app.session.reading_session import Export, InferenceJob, ReadingSession

__all__ = ["Export", "InferenceJob", "ReadingSession"]
