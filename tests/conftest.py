"""Shared fixtures: offscreen Qt, isolated settings, pydicom's bundled files, ../shared data."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# The app's log goes to a folder of this test run, never the user's (subprocesses inherit it), and so do
# caches (the demo study, hashes of verified model files). The folders go when the run ends.
for _variable, _prefix in (("RADLENS_LOG_DIR", "radlens-test-log-"), ("XDG_CACHE_HOME", "radlens-test-cache-")):
    if _variable not in os.environ:
        os.environ[_variable] = tempfile.mkdtemp(prefix=_prefix)
        atexit.register(shutil.rmtree, os.environ[_variable], ignore_errors=True)

import pydicom  # noqa: E402
import pytest  # noqa: E402

SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def pydicom_file(name: str) -> Path:
    """A test file that ships inside the pydicom package (never downloaded)."""
    path = PYDICOM_FILES / name
    if not path.is_file():
        pytest.skip(f"pydicom does not ship {name}")
    return path


@pytest.fixture
def shared_datasets() -> Path:
    if not SHARED_DATASETS.is_dir():
        pytest.skip("../shared/datasets is not present")
    return SHARED_DATASETS


@pytest.fixture
def app_settings(tmp_path):
    """Settings in a temporary ini file, so tests never touch the user's."""
    from PySide6 import QtCore

    from app.ui.settings import AppSettings

    return AppSettings(QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.Format.IniFormat))


@pytest.fixture
def main_window(qtbot, app_settings):
    from app.ui.application import create_application
    from app.ui.main_window import MainWindow

    create_application()
    window = MainWindow(settings=app_settings)
    qtbot.addWidget(window)
    window.resize(1200, 900)
    window.show()
    qtbot.waitExposed(window)
    return window


@pytest.fixture(scope="session")
def orthanc_installed() -> None:
    """Installs Orthanc (Debian packages) when missing; skips with the reason where it cannot."""
    from tests.orthanc import ensure_orthanc

    reason = ensure_orthanc()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def orthanc(orthanc_installed, tmp_path_factory):
    """A fresh Orthanc PACS on free loopback ports with empty storage, stopped after the test.

    It knows the AE titles RADLENS (this app, at 127.0.0.1 on the port in `orthanc.modalities`).
    """
    from tests.orthanc import OrthancServer, free_port

    server = OrthancServer(tmp_path_factory.mktemp("orthanc"), modalities={"RADLENS": ("127.0.0.1", free_port())})
    server.start()
    yield server
    server.kill()  # its storage is thrown away: no need for a clean (slower) shutdown


@pytest.fixture(scope="session")
def x_server():
    """A real X server (Xvfb) for the whole run, installed from Debian when missing; skips where it cannot be."""
    from tests.xvfb import XvfbServer, ensure_xvfb

    reason = ensure_xvfb()
    if reason:
        pytest.skip(reason)
    server = XvfbServer()
    yield server
    server.stop()
