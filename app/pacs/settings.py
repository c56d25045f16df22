"""The PACS connection settings, kept per user as JSON (platformdirs), checked when loaded and saved."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

SETTINGS_FILE = "pacs.json"
SETTINGS_VARIABLE = "RADLENS_PACS_SETTINGS"  # another settings file (tests, site-wide set-ups)
LOOPBACK = "127.0.0.1"


class PacsSettingsError(ValueError):
    """A settings value that cannot be used, in one line naming the field."""


@dataclass
class PacsSettings:
    host: str = LOOPBACK  # the PACS
    port: int = 4242
    called_ae: str = "ORTHANC"  # the PACS's AE title
    calling_ae: str = "RADLENS"  # ours, when we query, retrieve and send; also our storage SCP's title
    dicomweb_url: str = ""  # e.g. http://127.0.0.1:8042/dicom-web; empty: DICOMweb not used
    prefer_dicomweb: bool = False  # the window searches, retrieves and sends over DICOMweb instead of DIMSE
    retrieve_by_move: bool = False  # C-MOVE to our storage SCP instead of C-GET (the PACS must know calling_ae)
    cache_dir: str = ""  # retrieved studies; empty: the user's cache folder
    cache_limit_mb: int = 20_000
    scp_address: str = LOOPBACK  # where our storage SCP listens; another address only when the user says so
    scp_port: int = 11112
    scp_allowed_aes: list[str] = field(default_factory=lambda: ["ORTHANC"])  # calling AE titles we accept
    timeout_s: float = 30.0
    tls: bool = False  # DICOM TLS for associations we open and for our SCP
    tls_ca_file: str = ""  # certificates we trust (the PACS's, or its CA)
    tls_cert_file: str = ""  # our certificate and key (needed by the SCP, optional for a client)
    tls_key_file: str = ""

    def __post_init__(self) -> None:
        for name in ("called_ae", "calling_ae"):
            setattr(self, name, check_ae_title(getattr(self, name), name))
        self.scp_allowed_aes = [check_ae_title(t, "scp_allowed_aes") for t in self.scp_allowed_aes]
        for name in ("port", "scp_port"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
                raise PacsSettingsError(f"{name} must be a port number from 1 to 65535, not {value!r}")
        if not isinstance(self.cache_limit_mb, int) or self.cache_limit_mb < 1:
            raise PacsSettingsError(f"cache_limit_mb must be a whole number of megabytes, not {self.cache_limit_mb!r}")
        if not isinstance(self.timeout_s, (int, float)) or not 0 < self.timeout_s <= 3600:
            raise PacsSettingsError(f"timeout_s must be between 0 and 3600 seconds, not {self.timeout_s!r}")
        if self.dicomweb_url and not self.dicomweb_url.startswith(("http://", "https://")):
            raise PacsSettingsError(f"dicomweb_url must start with http:// or https://, not {self.dicomweb_url!r}")
        if self.prefer_dicomweb and not self.dicomweb_url:
            raise PacsSettingsError("prefer_dicomweb needs dicomweb_url (http://host:port/dicom-web)")
        if self.tls and not self.tls_ca_file:
            raise PacsSettingsError("tls needs tls_ca_file: the certificate(s) to trust the PACS with")

    @property
    def cache_folder(self) -> Path:
        if self.cache_dir:
            return Path(self.cache_dir)
        from platformdirs import user_cache_dir

        return Path(user_cache_dir("RadLens", appauthor=False)) / "pacs"

    @property
    def sent_folder(self) -> Path:
        """Where the window writes the results it sends: beside the cache, never in it (the cache evicts)."""
        return self.cache_folder.parent / "pacs-sent"


def check_ae_title(value: object, name: str) -> str:
    """An AE title: 1 to 16 printable ASCII characters, no backslash, not only spaces."""
    if not isinstance(value, str) or not value.strip() or len(value) > 16 or "\\" in value \
            or not all(32 <= ord(c) < 127 for c in value):
        raise PacsSettingsError(f"{name}: an AE title is 1 to 16 ASCII characters without a backslash, "
                                f"not {value!r}")
    return value.strip()


def settings_path() -> Path:
    override = os.environ.get(SETTINGS_VARIABLE)
    if override:
        return Path(override)
    from platformdirs import user_config_dir

    return Path(user_config_dir("RadLens", appauthor=False)) / SETTINGS_FILE


def load_settings(path: Path | None = None) -> PacsSettings:
    """The saved settings, or the defaults when none are saved; PacsSettingsError when the file is bad."""
    path = path or settings_path()
    if not path.is_file():
        return PacsSettings()
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PacsSettingsError(f"cannot read the PACS settings in {path}: {error}") from None
    if not isinstance(stored, dict):
        raise PacsSettingsError(f"the PACS settings in {path} are not a JSON object")
    return from_mapping(stored)


def from_mapping(values: dict) -> PacsSettings:
    known = {f.name for f in fields(PacsSettings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise PacsSettingsError(f"unknown PACS setting(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    try:
        return PacsSettings(**values)
    except TypeError as error:
        raise PacsSettingsError(str(error)) from None


def save_settings(settings: PacsSettings, path: Path | None = None) -> Path:
    path = path or settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(settings), indent=2), encoding="utf-8")
    temporary.replace(path)
    return path


def with_changes(settings: PacsSettings, assignments: list[str]) -> PacsSettings:
    """Settings with `name=value` assignments applied (values parsed as JSON when they are, else text)."""
    values = asdict(settings)
    for assignment in assignments:
        name, equals, text = assignment.partition("=")
        if not equals:
            raise PacsSettingsError(f"expected name=value, got {assignment!r}")
        name = name.strip()
        if name not in values:
            raise PacsSettingsError(f"unknown PACS setting {name!r} (known: {', '.join(sorted(values))})")
        if isinstance(values[name], list):
            values[name] = [part.strip() for part in text.split(",") if part.strip()]
        elif isinstance(values[name], str):
            values[name] = text
        else:
            try:
                values[name] = json.loads(text)
            except json.JSONDecodeError:
                raise PacsSettingsError(f"{name} needs a {type(values[name]).__name__}, got {text!r}") from None
    return from_mapping(values)
