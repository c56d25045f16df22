"""DICOM network operations with pynetdicom: C-ECHO, C-FIND, C-GET or C-MOVE of single instances and C-STORE."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pynetdicom import AE, StoragePresentationContexts, build_role, evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from app.pacs.security import client_tls
from app.pacs.settings import PacsSettings

log = logging.getLogger("radlens.pacs")
logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # its INFO/DEBUG records print data sets (PHI)

SUCCESS, PENDING = 0x0000, (0xFF00, 0xFF01)
UNKNOWN_DESTINATION = 0xA801
MAX_CONTEXTS = 128
MAX_PDU = 1 << 20  # what we accept per PDU; pynetdicom's 16 kB default made retrieval CPU-bound


class PacsError(Exception):
    """Why talking to the PACS failed, in one line meant for the user."""


def describe_peer(settings: PacsSettings) -> str:
    return f"{settings.called_ae}@{settings.host}:{settings.port}"


@contextmanager
def association(settings: PacsSettings, contexts: Iterable[tuple[str, list[str] | None]], *,
                roles: Iterable[str] = (), handlers: list | None = None) -> Iterator:
    """An established association with the PACS, released afterwards; PacsError when there is none."""
    ae = AE(ae_title=settings.calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = settings.timeout_s
    ae.connection_timeout = min(settings.timeout_s, 10.0)
    for uid, syntaxes in contexts:
        if syntaxes:
            ae.add_requested_context(uid, syntaxes)
        else:
            ae.add_requested_context(uid)
    assoc = ae.associate(settings.host, settings.port, ae_title=settings.called_ae, max_pdu=MAX_PDU,
                         ext_neg=[build_role(uid, scp_role=True) for uid in roles] or None,
                         evt_handlers=handlers or None, tls_args=client_tls(settings))
    if assoc.is_rejected:
        raise PacsError(f"the PACS {describe_peer(settings)} refused the association (check that it knows the "
                        f"AE title {settings.calling_ae} and that called_ae is right)")
    if not assoc.is_established:
        raise PacsError(f"no answer from the PACS at {describe_peer(settings)} (down, wrong host/port, "
                        f"a firewall, or TLS on one side only)")
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def echo(settings: PacsSettings) -> None:
    """A C-ECHO; PacsError when the PACS does not answer it with success."""
    with association(settings, [(Verification, None)]) as assoc:
        status = assoc.send_c_echo()
        if status.get("Status") != SUCCESS:
            raise PacsError(f"the PACS {describe_peer(settings)} answered the echo with status "
                            f"{status.get('Status', 'none (association dropped)')}")
    log.info("C-ECHO to the PACS succeeded")


def find(settings: PacsSettings, query: Dataset) -> list[Dataset]:
    """C-FIND in the Study Root model: every matching identifier (any level)."""
    matches = []
    with association(settings, [(StudyRootQueryRetrieveInformationModelFind, None)]) as assoc:
        for status, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
            code = status.get("Status")
            if code in PENDING and identifier is not None:
                matches.append(identifier)
            elif code is None:
                raise PacsError(f"the PACS {describe_peer(settings)} dropped the connection during the search")
            elif code != SUCCESS:
                raise PacsError(f"the PACS {describe_peer(settings)} failed the search (status 0x{code:04X})")
    log.info("C-FIND at %s level: %d match(es)", query.get("QueryRetrieveLevel", "?"), len(matches))
    return matches


@dataclass(frozen=True)
class InstanceRef:
    study: str
    series: str
    sop_instance: str
    sop_class: str = ""


def get_instances(settings: PacsSettings, instances: list[InstanceRef],
                  store: Callable[[Dataset, bytes], int], after_each: Callable[[InstanceRef], None]) -> None:
    """C-GET each instance in one association; `store(dataset, encoded)` keeps what arrives and returns
    the C-STORE status. PacsError when the association ends before all were asked for."""
    classes = sorted({i.sop_class for i in instances if i.sop_class})
    from pydicom.uid import AllTransferSyntaxes

    storage = [(uid, list(AllTransferSyntaxes)) for uid in classes] if classes else \
        [(c.abstract_syntax, None) for c in StoragePresentationContexts[: MAX_CONTEXTS - 1]]

    def on_store(event) -> int:
        return store(event.dataset, event.encoded_dataset())

    contexts = [(StudyRootQueryRetrieveInformationModelGet, None), *storage[: MAX_CONTEXTS - 1]]
    with association(settings, contexts, roles=[uid for uid, _ in storage[: MAX_CONTEXTS - 1]],
                     handlers=[(evt.EVT_C_STORE, on_store)]) as assoc:
        for instance in instances:
            if not assoc.is_established:
                raise PacsError(f"the PACS {describe_peer(settings)} dropped the connection during the transfer")
            last = None
            for status, _ in assoc.send_c_get(_image_query(instance), StudyRootQueryRetrieveInformationModelGet):
                last = status.get("Status", last)
            if last is None or not assoc.is_established:
                raise PacsError(f"the PACS {describe_peer(settings)} dropped the connection during the transfer")
            if last not in (SUCCESS, *PENDING):
                log.warning("C-GET of one instance ended with status 0x%04X", last)
            after_each(instance)


def _image_query(instance: InstanceRef) -> Dataset:
    query = Dataset()
    query.QueryRetrieveLevel = "IMAGE"
    query.StudyInstanceUID, query.SeriesInstanceUID = instance.study, instance.series
    query.SOPInstanceUID = instance.sop_instance
    return query


def move_instances(settings: PacsSettings, instances: list[InstanceRef],
                   after_each: Callable[[InstanceRef], None]) -> None:
    """C-MOVE each instance to our own AE title: the PACS stores it to our storage SCP, which must be listening
    and known to the PACS as calling_ae at scp_address:scp_port. PacsError when the association ends early
    or the PACS does not know where to send."""
    dropped = f"the PACS {describe_peer(settings)} dropped the connection during the transfer"
    with association(settings, [(StudyRootQueryRetrieveInformationModelMove, None)]) as assoc:
        for instance in instances:
            if not assoc.is_established:
                raise PacsError(dropped)
            last = None
            for status, _ in assoc.send_c_move(_image_query(instance), settings.calling_ae,
                                               StudyRootQueryRetrieveInformationModelMove):
                last = status.get("Status", last)
            if last == UNKNOWN_DESTINATION:
                raise PacsError(f"the PACS {describe_peer(settings)} does not know the move destination "
                                f"{settings.calling_ae} (add it to the PACS's modalities with our storage SCP's "
                                f"address and port {settings.scp_port})")
            if last is None or not assoc.is_established:
                raise PacsError(dropped)
            if last not in (SUCCESS, *PENDING):
                log.warning("C-MOVE of one instance ended with status 0x%04X", last)
            after_each(instance)


def store_datasets(settings: PacsSettings, datasets: list[tuple[str, Dataset]],
                   progress: Callable[[int, int], None] | None = None) -> list[tuple[str, str]]:
    """C-STORE each (label, data set); the (label, reason) of those not stored. PacsError when none could be."""
    contexts = sorted({(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for _, ds in datasets})
    if len(contexts) > MAX_CONTEXTS:
        raise PacsError(f"{len(contexts)} kinds of object in one send; at most {MAX_CONTEXTS} per association")
    failed = []
    with association(settings, [(uid, [syntax]) for uid, syntax in contexts]) as assoc:
        for number, (label, ds) in enumerate(datasets, start=1):
            if not assoc.is_established:
                failed.append((label, "the PACS dropped the connection"))
                continue
            try:
                status = assoc.send_c_store(ds)
            except (ValueError, RuntimeError) as error:  # no accepted context for this object
                failed.append((label, f"the PACS did not accept this kind of object ({error})"))
                continue
            code = status.get("Status")
            if code not in (SUCCESS, 0xB000, 0xB007, 0xB006):  # success or warnings
                failed.append((label, "no answer" if code is None else f"refused with status 0x{code:04X}"))
            if progress:
                progress(number, len(datasets))
    log.info("C-STORE: %d sent, %d not", len(datasets) - len(failed), len(failed))
    return failed
