"""AI > Send results to PACS: the session's results (as shown) and the active view, written by
app.export.results_bundle and sent by app.commands.send_results off the UI thread; each file written is
recorded in the session."""

from __future__ import annotations

import logging
import time

import numpy as np
from PySide6 import QtCore, QtGui
from superqt.utils import thread_worker

from app.core.text import describe
from app.session import ReadingSession

log = logging.getLogger("radlens.ui")


@thread_worker(start_thread=False)
def _send_worker(settings, items, out, capture):
    """Returns a SendReport, or the reason as text (superqt would drop some exceptions without a signal)."""
    from app.commands.send_results import send_bundle
    from app.export.results_bundle import write_bundle

    try:
        return send_bundle(settings, write_bundle(items, out, capture))
    except Exception as error:
        log.error("Sending results failed", exc_info=True)
        return f"Sending failed unexpectedly ({describe(error)}); see the log"


def view_rgb(widget) -> np.ndarray:
    """The widget as it is drawn, as RGB (rows x columns x 3, uint8)."""
    image = widget.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGB888)
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    return rows[:, : image.width() * 3].reshape(image.height(), image.width(), 3).copy()


class ResultsSender(QtCore.QObject):
    """`send()` starts; `finished(summary, ok)` says what was sent or why not."""

    finished = QtCore.Signal(str, bool)

    def __init__(self, session: ReadingSession, study_view, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.study_view = session, study_view
        self._worker = None

    @property
    def busy(self) -> bool:
        return self._worker is not None

    def send(self) -> None:
        from app.export.results_bundle import session_items, view_capture
        from app.pacs.settings import PacsSettingsError, load_settings

        if self.busy:
            self.finished.emit("A send is still in progress; wait for it to end.", False)
            return
        try:
            settings = load_settings()
        except PacsSettingsError as error:
            self.finished.emit(f"Not sent: {error}", False)
            return
        items = session_items(self.session)
        if not items:
            self.finished.emit("Not sent: run the AI on the study first; there are no results to send.", False)
            return
        viewport = self.study_view.active
        capture = view_capture(self.session, view_rgb(viewport.canvas)) if viewport is not None else None  # no cell border
        out = settings.sent_folder / time.strftime("%Y%m%d-%H%M%S")
        suffix = 1
        while out.exists():
            suffix += 1
            out = out.with_name(f"{out.name.split('+')[0]}+{suffix}")
        worker = _send_worker(settings, items, out, capture)
        worker.returned.connect(self._on_returned)
        worker.finished.connect(lambda: self._on_finished(worker))
        self._worker = worker
        worker.start()

    def _on_returned(self, report) -> None:
        self._worker = None  # done: a Send right after its message starts a new one (not 'still in progress')
        if isinstance(report, str):
            self.finished.emit(report, False)
            return
        for written in report.bundle.written:
            self.session.record_export(written.path, written.kind, written.image_identity)
        self.finished.emit(report.summary(), report.ok)

    def _on_finished(self, worker) -> None:
        if self._worker is worker:
            self._worker = None
