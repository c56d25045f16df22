"""The PACS panel (File > PACS…): search studies (C-FIND, or QIDO-RS when the settings prefer DICOMweb), retrieve
one into the cache and open it, the studies our storage SCP receives, and the connection settings.

PACS work runs off the UI thread (superqt workers); a failure is a line in the panel, never a dialog.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from PySide6 import QtCore, QtWidgets
from superqt.utils import thread_worker

from app.core.text import describe, printable
from app.pacs.dimse import PacsError
from app.pacs.query import StudyMatch, StudyQuery
from app.pacs.settings import PacsSettings, PacsSettingsError, load_settings
from app.ui.pacs_settings_form import PacsSettingsForm

log = logging.getLogger("radlens.ui")
MODALITIES = ("", "MG", "US", "MR", "CT", "CR", "DX", "PT", "NM", "XA", "OT")
SORT_ROLE = QtCore.Qt.ItemDataRole.UserRole
UID_ROLE = QtCore.Qt.ItemDataRole.UserRole + 1


@thread_worker(start_thread=False)
def _pacs_worker(job: Callable[[], object]):
    """(True, what `job` returned) or (False, why it failed in one line); never raises."""
    try:
        return True, job()
    except (PacsError, PacsSettingsError, ValueError, OSError) as error:
        return False, str(error)
    except Exception as error:  # a bug: named, logged, and the panel stays usable
        log.error("PACS operation failed", exc_info=True)
        return False, f"unexpected error ({describe(error)}); see the log"


def cache_state(settings: PacsSettings, study_uid: str) -> str:
    """What the cache holds of a study: "", "complete, N image(s)" or "partial: N missing"."""
    from app.pacs.retrieve import cache_for

    cache = cache_for(settings)
    folder = cache.study_folder(study_uid)
    if not folder.is_dir():
        return ""
    missing, _ = cache.known_missing(study_uid)
    have = len(list(folder.glob("*.dcm")))
    return f"partial: {have} here, {len(missing)} missing" if missing else f"complete, {have} image(s)"


class StudyTableModel(QtCore.QAbstractTableModel):
    """Study matches, one row each; SORT_ROLE holds the value a column sorts by."""

    COLUMNS = ("Date", "Patient", "Patient ID", "Modality", "Images", "Accession", "Description", "In cache")

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.matches: list[StudyMatch] = []
        self.states: dict[str, str] = {}

    def set_matches(self, matches: list[StudyMatch], states: dict[str, str]) -> None:
        self.beginResetModel()
        self.matches, self.states = list(matches), dict(states)
        self.endResetModel()

    def set_state(self, study_uid: str, state: str) -> None:
        self.states[study_uid] = state
        for row, match in enumerate(self.matches):
            if match.study_uid == study_uid:
                index = self.index(row, len(self.COLUMNS) - 1)
                self.dataChanged.emit(index, index)

    def rowCount(self, parent=QtCore.QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self.matches)

    def columnCount(self, parent=QtCore.QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.COLUMNS)

    def _values(self, match: StudyMatch) -> tuple[tuple[str, object], ...]:
        date = match.study_date
        shown_date = f"{date[:4]}-{date[4:6]}-{date[6:]}" if len(date) == 8 else date
        count = "" if match.instances is None else str(match.instances)
        return ((shown_date, date), (printable(match.patient_name).replace("^", " ").strip(), match.patient_name),
                (printable(match.patient_id), match.patient_id), (match.modalities, match.modalities),
                (count, -1 if match.instances is None else match.instances),
                (printable(match.accession), match.accession), (printable(match.description), match.description),
                (self.states.get(match.study_uid, ""), self.states.get(match.study_uid, "")))

    def data(self, index: QtCore.QModelIndex, role: int = QtCore.Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        match = self.matches[index.row()]
        shown, key = self._values(match)[index.column()]
        if role in (QtCore.Qt.ItemDataRole.DisplayRole, QtCore.Qt.ItemDataRole.ToolTipRole):
            return shown
        if role == SORT_ROLE:
            return key
        if role == UID_ROLE:
            return match.study_uid
        return None

    def headerData(self, section: int, orientation, role: int = QtCore.Qt.ItemDataRole.DisplayRole):
        if role == QtCore.Qt.ItemDataRole.DisplayRole and orientation == QtCore.Qt.Orientation.Horizontal:
            return self.COLUMNS[section]
        return None


class PacsPanel(QtWidgets.QDockWidget):
    """`open_paths(list[Path])` opens a retrieved or received study in the window."""

    retrieve_progress = QtCore.Signal(int, int)
    received = QtCore.Signal(str, str)  # study UID, SOP Instance UID (from the storage SCP's thread)
    idle = QtCore.Signal()  # no PACS operation is running any more (tests wait for it)

    def __init__(self, open_paths: Callable[[list[Path]], None], parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("PACS", parent)
        self.setObjectName("pacsDock")
        self.open_paths = open_paths
        self._workers: dict[str, object] = {}
        self._cancel = threading.Event()
        self._server = None
        self._incoming_settings: PacsSettings | None = None
        self.incoming_studies: dict[str, int] = {}  # study UID -> instances received this session
        try:
            settings = load_settings()
        except PacsSettingsError as error:
            settings, problem = PacsSettings(), f"{error}; the defaults are shown"
            QtCore.QTimer.singleShot(0, lambda: self.show_message(problem, error=True))
        self._build(settings)
        self._list_received(settings)
        self.retrieve_progress.connect(self._on_retrieve_progress)
        self.received.connect(self._on_received)

    # ---- widgets -------------------------------------------------------------------------------
    def _build(self, settings: PacsSettings) -> None:
        body = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        self.tabs = QtWidgets.QTabWidget()
        self.tabs.addTab(self._build_search(), "Search")
        self.tabs.addTab(self._build_incoming(), "Incoming")
        self.settings_form = PacsSettingsForm(settings)
        self.settings_form.test_button.clicked.connect(self.test_connection)
        self.settings_form.saved.connect(lambda path: self.show_message(f"Settings saved in {path}"))
        self.settings_form.failed.connect(lambda text: self.show_message(text, error=True))
        self.tabs.addTab(self.settings_form, "Connection")
        layout.addWidget(self.tabs, 1)
        status = QtWidgets.QHBoxLayout()
        self.message = QtWidgets.QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setFormat("%v/%m images")
        self.progress.setVisible(False)
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel)
        status.addWidget(self.message, 1)
        status.addWidget(self.progress)
        status.addWidget(self.cancel_button)
        layout.addLayout(status)
        self.setWidget(body)

    def _build_search(self) -> QtWidgets.QWidget:
        page = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(page)
        fields = QtWidgets.QGridLayout()
        self.name_edit = QtWidgets.QLineEdit(placeholderText="e.g. DOE (wildcards * ?)")
        self.id_edit = QtWidgets.QLineEdit()
        self.accession_edit = QtWidgets.QLineEdit()
        self.from_edit = QtWidgets.QLineEdit(placeholderText="YYYY-MM-DD")
        self.to_edit = QtWidgets.QLineEdit(placeholderText="YYYY-MM-DD")
        self.modality_box = QtWidgets.QComboBox()
        self.modality_box.setEditable(True)
        self.modality_box.addItems(MODALITIES)
        self.search_button = QtWidgets.QPushButton("Search")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search)
        for edit in (self.name_edit, self.id_edit, self.accession_edit, self.from_edit, self.to_edit):
            edit.returnPressed.connect(self.search)
        for column, (label, widget) in enumerate((("Patient name", self.name_edit), ("Patient ID", self.id_edit),
                                                  ("Accession", self.accession_edit))):
            fields.addWidget(QtWidgets.QLabel(label), 0, 2 * column)
            fields.addWidget(widget, 0, 2 * column + 1)
        for column, (label, widget) in enumerate((("Date from", self.from_edit), ("to", self.to_edit),
                                                  ("Modality", self.modality_box))):
            fields.addWidget(QtWidgets.QLabel(label), 1, 2 * column)
            fields.addWidget(widget, 1, 2 * column + 1)
        fields.addWidget(self.search_button, 1, 6)
        layout.addLayout(fields)
        self.model = StudyTableModel(self)
        self.proxy = QtCore.QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.table = QtWidgets.QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, QtCore.Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(6, QtWidgets.QHeaderView.ResizeMode.Stretch)  # description
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(False)
        self.table.doubleClicked.connect(lambda _: self.retrieve())
        self.table.selectionModel().selectionChanged.connect(self._on_selection)
        layout.addWidget(self.table, 1)
        self.retrieve_button = QtWidgets.QPushButton("Retrieve and open")
        self.retrieve_button.setEnabled(False)
        self.retrieve_button.clicked.connect(self.retrieve)
        row = QtWidgets.QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.retrieve_button)
        layout.addLayout(row)
        return page

    def _build_incoming(self) -> QtWidgets.QWidget:
        page = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(page)
        self.receive_box = QtWidgets.QCheckBox("Receive studies sent to RadLens (storage SCP)")
        self.receive_box.toggled.connect(self.set_receiving)
        layout.addWidget(self.receive_box)
        self.incoming_list = QtWidgets.QListWidget()
        self.incoming_list.itemDoubleClicked.connect(self.open_incoming)
        layout.addWidget(self.incoming_list, 1)
        open_button = QtWidgets.QPushButton("Open")
        open_button.clicked.connect(lambda: self.open_incoming(self.incoming_list.currentItem()))
        row = QtWidgets.QHBoxLayout()
        row.addStretch(1)
        row.addWidget(open_button)
        layout.addLayout(row)
        return page

    def show_message(self, text: str, *, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #d9534f;" if error else "")

    # ---- running PACS work off the UI thread -----------------------------------------------------
    @property
    def busy(self) -> bool:
        return bool(self._workers)

    def _start(self, kind: str, job: Callable[[], object], done: Callable[[bool, object], None]) -> bool:
        if kind in self._workers:
            return False
        worker = _pacs_worker(job)
        worker.returned.connect(lambda outcome: done(*outcome))
        worker.finished.connect(lambda: self._finished(kind))
        self._workers[kind] = worker
        worker.start()
        return True

    def _finished(self, kind: str) -> None:
        self._workers.pop(kind, None)
        self._on_selection()
        if not self._workers:
            self.idle.emit()

    def _settings(self) -> PacsSettings | None:
        """The settings in the form (what the reader sees is what is used), or None with the reason shown."""
        try:
            return self.settings_form.settings()
        except PacsSettingsError as error:
            self.show_message(str(error), error=True)
            return None

    # ---- search ----------------------------------------------------------------------------------
    def query(self, web: bool = False) -> StudyQuery:
        name = self.name_edit.text().strip()
        if name and not web and not any(c in name for c in "*?"):
            name += "*"  # a name's beginning finds it (QIDO on Orthanc 1.10 cannot take an escaped *)
        return StudyQuery(name, self.id_edit.text().strip(), self.from_edit.text().strip(),
                          self.to_edit.text().strip(), self.modality_box.currentText().strip(),
                          self.accession_edit.text().strip())

    def search(self) -> None:
        from app.pacs.query import find_studies

        settings = self._settings()
        if settings is None:
            return
        try:
            query = self.query(settings.prefer_dicomweb)
        except ValueError as error:
            self.show_message(str(error), error=True)
            return

        def job():
            matches = find_studies(settings, query, web=settings.prefer_dicomweb)
            return matches, {m.study_uid: cache_state(settings, m.study_uid) for m in matches}

        if self._start("search", job, self._on_searched):
            self.search_button.setEnabled(False)
            self.show_message("Searching…")

    def _on_searched(self, ok: bool, outcome) -> None:
        self.search_button.setEnabled(True)
        if not ok:
            self.show_message(f"Search failed: {outcome}", error=True)
            return
        matches, states = outcome
        self.model.set_matches(matches, states)
        self.table.resizeColumnsToContents()
        self.show_message(f"{len(matches)} stud{'y' if len(matches) == 1 else 'ies'} found")
        if matches:
            self.table.selectRow(0)

    def selected_study(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return self.proxy.data(rows[0], UID_ROLE) if rows else None

    def _on_selection(self, *_) -> None:
        uid = self.selected_study()
        self.retrieve_button.setEnabled(uid is not None and "retrieve" not in self._workers)
        partial = uid is not None and self.model.states.get(uid, "").startswith("partial")
        self.retrieve_button.setText("Retrieve again (resume)" if partial else "Retrieve and open")

    # ---- retrieve --------------------------------------------------------------------------------
    def retrieve(self) -> None:
        from app.pacs.retrieve import retrieve_study

        uid, settings = self.selected_study(), self._settings()
        if uid is None or settings is None:
            return
        self._cancel.clear()

        def job():
            return retrieve_study(settings, uid, web=settings.prefer_dicomweb, cancelled=self._cancel.is_set,
                                  progress=lambda done, total: self.retrieve_progress.emit(done, total or 0))

        if self._start("retrieve", job, lambda ok, report: self._on_retrieved(settings, uid, ok, report)):
            self.retrieve_button.setEnabled(False)
            self.cancel_button.setVisible(True)
            self.show_message("Retrieving…")

    def cancel(self) -> None:
        self._cancel.set()

    def _on_retrieve_progress(self, done: int, total: int) -> None:
        self.progress.setVisible(True)
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _on_retrieved(self, settings: PacsSettings, uid: str, ok: bool, report) -> None:
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        self.model.set_state(uid, cache_state(settings, uid))
        self.table.resizeColumnToContents(len(StudyTableModel.COLUMNS) - 1)
        if not ok:
            self.show_message(f"Retrieve failed: {report}", error=True)
            return
        if report.complete:
            self.show_message(f"Retrieved {report.fetched} image(s) ({report.already} already in the cache); "
                              "opening the study")
            self.open_paths([report.folder])
            return
        have = report.already + report.fetched
        total = "?" if report.total is None else str(report.total)
        missing = f"{len(report.missing)} missing" if report.missing else "the rest unknown"
        self.show_message(f"Partial study: {have} of {total} image(s) in the cache, {missing} ({report.problem}). "
                          f"Retrieve again to resume.", error=True)

    # ---- test connection -------------------------------------------------------------------------
    def test_connection(self) -> None:
        settings = self._settings()
        if settings is None:
            return

        def job() -> str:
            from app.pacs.dimse import describe_peer, echo
            from app.pacs.web import ping

            echo(settings)
            said = [f"C-ECHO: {describe_peer(settings)} answered"]
            if settings.dicomweb_url:
                try:
                    ping(settings)
                    said.append(f"QIDO-RS: {settings.dicomweb_url} answered")
                except PacsError as error:
                    said.append(f"QIDO-RS failed: {error}")
            return "; ".join(said)

        if self._start("echo", job, self._on_tested):
            self.settings_form.test_button.setEnabled(False)
            self.show_message("Testing the connection…")

    def _on_tested(self, ok: bool, text: str) -> None:
        self.settings_form.test_button.setEnabled(True)
        self.show_message(text if ok else f"Connection failed: {text}", error=not ok or "failed" in text)

    # ---- incoming (storage SCP) ------------------------------------------------------------------
    def set_receiving(self, on: bool) -> None:
        from app.pacs.retrieve import cache_for
        from app.pacs.scp import StorageServer

        if not on:
            self.stop_receiving()
            return
        settings = self._settings()
        if settings is None or self._server is not None:
            return
        server = StorageServer(settings, cache_for(settings), on_received=self.received.emit)
        try:
            server.start()
        except (OSError, PacsSettingsError) as error:
            self.show_message(f"Cannot receive: {error}", error=True)
            with QtCore.QSignalBlocker(self.receive_box):
                self.receive_box.setChecked(False)
            return
        self._server, self._incoming_settings = server, settings
        host, port = server.address
        self.show_message(f"Receiving as {settings.calling_ae} on {host}:{port} from "
                          f"{', '.join(settings.scp_allowed_aes)}")

    def stop_receiving(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
            self.show_message("Not receiving")
        with QtCore.QSignalBlocker(self.receive_box):
            self.receive_box.setChecked(False)

    def _list_received(self, settings: PacsSettings) -> None:
        """What the storage SCP filed before (this run or an earlier one) and the cache still holds."""
        from app.pacs.retrieve import cache_for

        try:
            received = cache_for(settings).received()
        except OSError as error:  # an unreadable cache folder: said, and the panel opens anyway
            self.show_message(f"Cannot list the studies received before: {describe(error)}", error=True)
            return
        for study, summary in received:
            self.incoming_studies[summary.get("study", study.uid)] = study.files
            self._show_incoming(summary.get("study", study.uid), study.folder, summary, study.files, first=False)

    def _on_received(self, study_uid: str, sop_uid: str) -> None:
        from app.pacs.retrieve import cache_for

        cache = cache_for(self._incoming_settings)
        folder = cache.study_folder(study_uid)
        self.incoming_studies[study_uid] = self.incoming_studies.get(study_uid, 0) + 1
        self._show_incoming(study_uid, folder, cache.received_note(folder) or {}, self.incoming_studies[study_uid],
                            first=True)

    def _show_incoming(self, study_uid: str, folder: Path, summary: dict, images: int, *, first: bool) -> None:
        """One row per study: date, patient, modality, description, images; a new arrival goes on top."""
        name = printable(str(summary.get("PatientName", ""))).replace("^", " ").strip()
        label = "  ".join(part for part in (printable(str(summary.get("StudyDate", ""))), name,
                                            printable(str(summary.get("Modality", ""))),
                                            printable(str(summary.get("StudyDescription", ""))),
                                            f"{images} image(s)") if part)
        for row in range(self.incoming_list.count()):
            item = self.incoming_list.item(row)
            if item.data(UID_ROLE) == study_uid:
                item.setText(label)
                return
        item = QtWidgets.QListWidgetItem(label)
        item.setData(UID_ROLE, study_uid)
        item.setData(SORT_ROLE, str(folder))
        if first:
            self.incoming_list.insertItem(0, item)
        else:
            self.incoming_list.addItem(item)

    def open_incoming(self, item: QtWidgets.QListWidgetItem | None) -> None:
        if item is not None:
            self.open_paths([Path(item.data(SORT_ROLE))])

    def shut_down(self) -> None:
        """The window closes: stop a retrieval after its current image, and stop receiving."""
        self.cancel()
        if self._server is not None:
            self._server.stop()
            self._server = None
