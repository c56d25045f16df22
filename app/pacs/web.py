"""DICOMweb with dicomweb-client: QIDO-RS searches and ping, WADO-RS of single instances, STOW-RS."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pydicom.dataset import Dataset

from app.pacs.dimse import PacsError
from app.pacs.settings import PacsSettings

log = logging.getLogger("radlens.pacs")
for _talkative in ("dicomweb_client", "urllib3"):  # their DEBUG records hold request URLs: patient names, IDs
    logging.getLogger(_talkative).setLevel(logging.WARNING)


def client(settings: PacsSettings):
    if not settings.dicomweb_url:
        raise PacsError("no DICOMweb URL is set (radlens pacs config dicomweb_url=http://host:port/dicom-web)")
    import requests
    from dicomweb_client.api import DICOMwebClient

    session = requests.Session()
    if settings.tls_ca_file:
        session.verify = settings.tls_ca_file
    return DICOMwebClient(url=settings.dicomweb_url.rstrip("/"), session=session)


def _call(settings: PacsSettings, what: str, action):
    import requests

    try:
        return action()
    except requests.exceptions.HTTPError as error:
        status = error.response.status_code if error.response is not None else "?"
        raise PacsError(f"the DICOMweb server {settings.dicomweb_url} refused the {what} (HTTP {status})") from None
    except requests.exceptions.RequestException as error:
        raise PacsError(f"no answer from the DICOMweb server {settings.dicomweb_url} ({type(error).__name__})") \
            from None


def ping(settings: PacsSettings) -> None:
    """A QIDO-RS search for one study: PacsError when the server does not answer it."""
    web = client(settings)
    _call(settings, "QIDO-RS search", lambda: web.search_for_studies(limit=1, get_remaining=False))
    log.info("QIDO-RS ping succeeded")


# One page each, as the server sends it: dicomweb-client's get_remaining pages by offset until an empty
# page, and Orthanc 1.10 ignores the offset of a search on ModalitiesInStudy, so that never ends.
def qido_studies(settings: PacsSettings, filters: dict[str, str], keys: Iterable[str]) -> list[Dataset]:
    web = client(settings)
    found = _call(settings, "QIDO-RS search",
                  lambda: web.search_for_studies(search_filters=filters, fields=list(keys)))
    return [Dataset.from_json(item) for item in found]


def qido_instances(settings: PacsSettings, study_uid: str) -> list[Dataset]:
    web = client(settings)
    found = _call(settings, "QIDO-RS search", lambda: web.search_for_instances(
        study_instance_uid=study_uid, fields=["SOPClassUID"]))
    return [Dataset.from_json(item) for item in found]


def wado_instance(settings: PacsSettings, study: str, series: str, instance: str) -> Dataset:
    web = client(settings)
    return _call(settings, "WADO-RS retrieval", lambda: web.retrieve_instance(study, series, instance))


def stow(settings: PacsSettings, datasets: list[Dataset]) -> list[tuple[str, str]]:
    """(SOP Instance UID, why) for each instance the server did not store. A STOW-RS answer lists what was
    stored and what failed; when some failed, servers answer 202, 400 or 409 with that list (Orthanc: 400),
    so an error status with such a list is read, not taken as "nothing stored"."""
    import requests

    web = client(settings)

    def upload() -> tuple[Dataset, bool]:
        """The answer, and whether it came with an error status."""
        try:
            return web.store_instances(datasets), False
        except requests.exceptions.HTTPError as error:
            answer = _dicom_json(error.response)
            if answer is None or not {"FailedSOPSequence", "ReferencedSOPSequence"} & set(answer.dir()):
                raise
            return answer, True

    answer, error_status = _call(settings, "STOW-RS upload", upload)
    failed = stow_failures(answer, [str(ds.SOPInstanceUID) for ds in datasets], complete=error_status)
    log.info("STOW-RS: %d instance(s) stored, %d not", len(datasets) - len(failed), len(failed))
    return failed


def _dicom_json(response) -> Dataset | None:
    try:
        return Dataset.from_json(response.json())
    except Exception:  # noqa: BLE001 - not a DICOM JSON body (HTML, text, nothing)
        return None


FAILURE_REASONS = {0x0110: "processing failure", 0x0122: "SOP class not supported", 0x0124: "not authorised",
                   0xA700: "out of resources", 0xA900: "data set does not match its SOP class",
                   0xC000: "cannot understand", 0xC122: "transfer syntax not supported"}


def stow_failures(answer: Dataset, sent: list[str], complete: bool = False) -> list[tuple[str, str]]:
    """(SOP Instance UID, reason in words) for the answer's Failed SOP Sequence, and for each sent instance
    the answer does not list as stored when it lists what was stored (or when `complete`: an error status,
    where only what it lists as stored was)."""
    failed = {}
    for item in answer.get("FailedSOPSequence") or []:
        code = item.get("FailureReason")
        reason = FAILURE_REASONS.get(int(code), f"failure reason 0x{int(code):04X}") if code is not None else \
            "no reason given"
        failed[str(item.get("ReferencedSOPInstanceUID", "unknown instance"))] = f"the server refused it: {reason}"
    if complete or "ReferencedSOPSequence" in answer:
        stored = {str(item.get("ReferencedSOPInstanceUID", "")) for item in answer.get("ReferencedSOPSequence") or []}
        for uid in sent:
            if uid not in stored and uid not in failed:
                failed[uid] = "the server did not confirm that it stored it"
    return list(failed.items())
