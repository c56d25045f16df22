"""Our storage SCP: C-STORE from the PACS or a modality into the cache, only from configured AE titles,
on loopback unless the settings name another address."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification
from pydicom.uid import AllTransferSyntaxes

from app.pacs.cache import CacheFull, StudyCache
from app.pacs.security import ref, server_tls
from app.pacs.settings import PacsSettings

log = logging.getLogger("radlens.pacs")
SUMMARY = ("StudyDate", "PatientName", "Modality", "StudyDescription")  # what the Incoming list says of a study
Received = Callable[[str, str], None]  # (study UID, SOP Instance UID), after the file is in the cache
STOP_GRACE_S = 2.0  # how long stop() lets open associations finish before aborting them


class StorageServer:
    """`start()` listens (non-blocking), `stop()` ends it; received instances go to `cache`."""

    def __init__(self, settings: PacsSettings, cache: StudyCache, on_received: Received | None = None) -> None:
        self.settings, self.cache, self.on_received = settings, cache, on_received
        self.received = 0
        self._server = None

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            return self.settings.scp_address, self.settings.scp_port
        return self._server.server_address[:2]

    def start(self) -> StorageServer:
        ae = AE(ae_title=self.settings.calling_ae)
        ae.require_calling_aet = list(self.settings.scp_allowed_aes)  # anyone else is rejected
        ae.network_timeout = ae.acse_timeout = ae.dimse_timeout = self.settings.timeout_s
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, list(AllTransferSyntaxes))
        ae.add_supported_context(Verification)
        try:
            self._server = ae.start_server((self.settings.scp_address, self.settings.scp_port), block=False,
                                           evt_handlers=[(evt.EVT_C_STORE, self._store)],
                                           ssl_context=server_tls(self.settings))
        except OSError as error:
            raise OSError(f"cannot listen on {self.settings.scp_address}:{self.settings.scp_port}: "
                          f"{error.strerror or error}") from None
        log.info("Storage SCP listening on %s:%d as %s", *self.address, self.settings.calling_ae)
        return self

    def stop(self) -> None:
        """Stop listening; associations still open get `STOP_GRACE_S` to end, then are aborted.

        A peer may hold an idle association open (Orthanc keeps one a few seconds for reuse), and pynetdicom
        keeps the process alive until it ends, up to `timeout_s`: Ctrl+C or closing the window waited that
        long. An instance still arriving when the abort comes is not stored, and its sender reports a failure.
        """
        if self._server is None:
            return
        server, self._server = self._server, None
        server.shutdown()
        open_now = server.active_associations
        deadline = time.monotonic() + STOP_GRACE_S
        while any(a.is_alive() for a in open_now) and time.monotonic() < deadline:
            time.sleep(0.05)
        for association in open_now:
            if association.is_alive():
                association.abort()

    def _store(self, event) -> int:
        try:
            ds = event.dataset
            study, sop = str(ds.StudyInstanceUID), str(ds.SOPInstanceUID)
        except (AttributeError, ValueError):
            return 0xC210  # cannot understand
        try:
            self.cache.put(study, sop, event.encoded_dataset())
        except CacheFull as error:
            log.warning("Storage SCP refused an instance: %s", error)
            return 0xA700
        except OSError as error:
            log.warning("Storage SCP cannot write to the cache: %s", error)
            return 0xA700
        try:  # the Incoming list's note; the instance is stored either way
            self.cache.mark_received(study, {key: str(ds.get(key, "")) for key in SUMMARY})
        except Exception as error:  # noqa: BLE001 - a disk error or an undecodable header value: say, go on
            log.warning("Storage SCP cannot note study %s as received: %s", ref(study), error)
        self.received += 1
        log.info("Storage SCP received an instance of study %s", ref(study))
        if self.on_received:
            self.on_received(study, sop)
        return 0x0000
