"""Asks the PACS for the current study's newest prior off the UI thread and hands the studies it fetched back."""

from __future__ import annotations

import logging

from PySide6 import QtCore
from superqt.utils import GeneratorWorker, thread_worker

from app.core.study import Study
from app.core.text import describe

log = logging.getLogger("radlens.ui")


@thread_worker(start_thread=False)
def _lookup(study: Study):
    """Returns (studies read from the fetched prior, message); never raises."""
    from app.io.study_loader import scan
    from app.pacs.dimse import PacsError
    from app.pacs.priors import fetch_newest_prior
    from app.pacs.settings import PacsSettingsError, load_settings

    try:
        fetched = fetch_newest_prior(load_settings(), study)
    except (PacsError, PacsSettingsError) as error:
        return [], f"The PACS could not be searched for priors: {error}"
    except Exception as error:  # a bug: named as one, the window stays usable
        log.error("Looking for priors stopped", exc_info=True)
        return [], f"Looking for priors stopped ({describe(error)}); see the log"
    if fetched.match is None:
        return [], "No earlier study of this patient on the PACS either"
    report = fetched.report
    studies = scan([report.folder]).studies if report.folder.is_dir() else []
    note = "" if report.complete else f" ({report.summary()})"
    return studies, f"Prior of {fetched.match.study_date} from the PACS{note}"


class PriorLookup(QtCore.QObject):
    """One lookup at a time; `finished(studies, message)` on the UI thread."""

    finished = QtCore.Signal(object, str)

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._worker: GeneratorWorker | None = None

    @property
    def busy(self) -> bool:
        return self._worker is not None

    def start(self, study: Study) -> None:
        if self._worker is not None:
            return
        worker = _lookup(study)
        worker.returned.connect(lambda outcome: self.finished.emit(*outcome))
        worker.finished.connect(self._clear)
        self._worker = worker
        worker.start()

    def _clear(self) -> None:
        self._worker = None
