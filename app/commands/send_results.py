"""Sending a results bundle (app.export.results_bundle) to the configured PACS, and saying what arrived and
what did not: C-STORE, or STOW-RS when the settings prefer DICOMweb. Used by the window and `radlens predict --send`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from app.export.results_bundle import Bundle
from app.pacs.dimse import PacsError, describe_peer
from app.pacs.send import send_files
from app.pacs.settings import PacsSettings, PacsSettingsError

log = logging.getLogger("radlens.pacs")


@dataclass
class SendReport:
    bundle: Bundle
    destination: str
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, why the PACS did not store it)
    problem: str = ""  # why nothing could be sent

    @property
    def sent(self) -> int:
        return 0 if self.problem else len(self.bundle.written) - len(self.failed)

    @property
    def ok(self) -> bool:
        return self.sent > 0 and not self.failed and not self.problem

    def summary(self) -> str:
        lines = []
        if self.problem:
            lines.append(f"Nothing sent to {self.destination}: {self.problem}")
        elif not self.bundle.written:
            lines.append("Nothing to send: no result of a DICOM image")
        elif not self.failed:
            lines.append(f"Sent to {self.destination}: {self.bundle.kinds()}")
        else:
            lines.append(f"Sent {self.sent} of {len(self.bundle.written)} file(s) to {self.destination}")
            lines += [f"not stored: {path}: {reason}" for path, reason in self.failed]
        lines += [f"not sent: {name}: {reason}" for name, reason in self.bundle.skipped]
        return "\n".join(lines)


def destination(settings: PacsSettings) -> str:
    return settings.dicomweb_url if settings.prefer_dicomweb else describe_peer(settings)


def send_bundle(settings: PacsSettings, bundle: Bundle) -> SendReport:
    """Send every file of the bundle; never raises for PACS trouble (see the report's `problem`)."""
    report = SendReport(bundle, destination(settings))
    if not bundle.written:
        return report
    try:
        report.failed = send_files(settings, bundle.paths, web=settings.prefer_dicomweb)
    except (PacsError, PacsSettingsError) as error:
        report.problem = str(error)
    log.info("Results sent: %d of %d file(s)%s", report.sent, len(bundle.written),
             f" ({report.problem})" if report.problem else "")
    return report
