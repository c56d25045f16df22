"""DICOM TLS contexts from the settings, and log references that carry no PHI (hashes, never UIDs or names)."""

from __future__ import annotations

import hashlib
import ssl

from app.pacs.settings import PacsSettings, PacsSettingsError


def ref(uid: str) -> str:
    """A short stable label for a UID in the log: UIDs identify patients (PS3.15 remaps them), so never logged."""
    return "#" + hashlib.sha256(str(uid).encode()).hexdigest()[:10]


def client_tls(settings: PacsSettings) -> tuple[ssl.SSLContext, str] | None:
    """pynetdicom's `tls_args` for an association we open, or None without TLS."""
    if not settings.tls:
        return None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.tls_ca_file)
        if settings.tls_cert_file:
            context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file or None)
    except (OSError, ssl.SSLError) as error:
        raise PacsSettingsError(f"DICOM TLS: cannot load the certificates: {error}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context, settings.host


def server_tls(settings: PacsSettings) -> ssl.SSLContext | None:
    """The SSL context of our storage SCP (needs our certificate; client certificates required when a CA is set)."""
    if not settings.tls:
        return None
    if not (settings.tls_cert_file and settings.tls_key_file):
        raise PacsSettingsError("a DICOM TLS storage SCP needs tls_cert_file and tls_key_file")
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
        context.load_verify_locations(settings.tls_ca_file)
    except (OSError, ssl.SSLError) as error:
        raise PacsSettingsError(f"DICOM TLS: cannot load the certificates: {error}") from None
    context.verify_mode = ssl.CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
