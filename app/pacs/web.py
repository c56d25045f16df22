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


def stow(settings: PacsSettings, datasets: list[Dataset]) -> None:
    web = client(settings)
    _call(settings, "STOW-RS upload", lambda: web.store_instances(datasets))
    log.info("STOW-RS: %d instance(s) sent", len(datasets))
