"""A real Orthanc PACS for tests: installed from Debian when missing, started on free loopback ports.

`ensure_orthanc()` installs the Debian packages `orthanc` and `orthanc-dicomweb` with apt-get when
they are missing and this process may (root, apt-get present); it does nothing when they are there.
`OrthancServer` runs one Orthanc with a temporary JSON configuration and storage folder, the DICOMweb
plugin on, listening on 127.0.0.1 only; it can be stopped (or killed) and started again on the same
storage, which is how tests cut a transfer off and prove that a retry resumes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from functools import lru_cache
from pathlib import Path

PACKAGES = ("orthanc", "orthanc-dicomweb")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
ORTHANC_AE = "ORTHANC"
START_TIMEOUT_S = 30.0
WITHOUT_VARIABLE = "RADLENS_TESTS_WITHOUT_ORTHANC"  # set: behave as if Orthanc could not be installed


def _binary() -> str | None:
    return shutil.which("Orthanc") or (Path("/usr/sbin/Orthanc").is_file() and "/usr/sbin/Orthanc") or None


@lru_cache(maxsize=1)
def ensure_orthanc() -> str | None:
    """None when Orthanc and its DICOMweb plugin are installed (installing them if need be), else why not."""
    if os.environ.get(WITHOUT_VARIABLE):
        return f"{WITHOUT_VARIABLE} is set: the tests run as where Orthanc cannot be installed"
    from tests.apt import install

    return install(PACKAGES, lambda: bool(_binary()) and DICOMWEB_PLUGIN.is_file())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OrthancServer:
    """One Orthanc on 127.0.0.1 with its own storage folder; `start`, `stop`, `kill`, `upload`."""

    def __init__(self, folder: Path, *, modalities: dict[str, tuple[str, int]] | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.dicom_port, self.http_port = free_port(), free_port()
        self.aet = ORTHANC_AE
        self.modalities = modalities or {}
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def config(self) -> dict:
        storage = str(self.folder / "storage")
        return {
            "Name": "RadLensTestPACS",
            "StorageDirectory": storage,
            "IndexDirectory": storage,
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "HttpServerEnabled": True,
            "DicomServerEnabled": True,
            "DicomCheckCalledAet": True,
            "DicomCheckModalityHost": False,
            "UnknownSopClassAccepted": False,  # only SOP classes it knows: a real acceptance test
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "ConcurrentJobs": 1,
            "HttpThreadsCount": 4,
            "SaveJobs": False,
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True},
            # Every AE that may query and retrieve (pynetdicom C-GET and C-MOVE need to be known).
            "DicomModalities": {name.lower(): [name, host, port] for name, (host, port) in self.modalities.items()},
        }

    def start(self) -> OrthancServer:
        (self.folder / "orthanc.json").write_text(json.dumps(self.config(), indent=1))
        self._log = open(self.folder / "orthanc.log", "ab")
        self.process = subprocess.Popen([_binary(), str(self.folder / "orthanc.json")], stdout=self._log,
                                        stderr=subprocess.STDOUT, cwd=self.folder)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited at start-up: {self.log_tail()}")
            try:
                self.get("/system")
                self.get("/dicom-web/studies")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer within {START_TIMEOUT_S:.0f} s: {self.log_tail()}")

    def log_tail(self) -> str:
        path = self.folder / "orthanc.log"
        return path.read_text(errors="replace")[-1500:] if path.is_file() else ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None
        if getattr(self, "_log", None):
            self._log.close()

    def kill(self) -> None:
        """End Orthanc at once, as a crash or a pulled cable would (SIGKILL)."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.stop()

    def get(self, path: str) -> object:
        with urllib.request.urlopen(self.url + path, timeout=5) as answer:
            return json.loads(answer.read() or b"null")

    def upload(self, *paths: Path) -> None:
        """Store files through Orthanc's own REST API (independent of the RadLens code under test)."""
        for path in paths:
            request = urllib.request.Request(self.url + "/instances", data=Path(path).read_bytes(), method="POST",
                                             headers={"Content-Type": "application/dicom"})
            with urllib.request.urlopen(request, timeout=30) as answer:
                answer.read()

    def instance_uids(self) -> set[str]:
        uids = set()
        for orthanc_id in self.get("/instances"):
            uids.add(self.get(f"/instances/{orthanc_id}/simplified-tags")["SOPInstanceUID"])
        return uids
