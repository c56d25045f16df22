"""The installer's recipe, checked without building: what is cut, what is left out, notices, portability."""

from __future__ import annotations

import configparser
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"
sys.path.insert(0, str(PACKAGING))

import build  # noqa: E402
import bundle_contents  # noqa: E402
import notices  # noqa: E402


def test_cuts_keep_what_the_app_reads():
    kept_dicom = ("examples_palette.dcm",)
    assert bundle_contents.is_dropped("torch/bin/test_api", kept_dicom)
    assert not bundle_contents.is_dropped("torch/bin/torch_shm_manager", kept_dicom)
    assert bundle_contents.is_dropped("PySide6/Qt/translations/qt_de.qm", kept_dicom)
    assert bundle_contents.is_dropped("PySide6/Qt/plugins/platforms/libqvnc.so", kept_dicom)
    assert not bundle_contents.is_dropped("PySide6/Qt/plugins/platforms/libqxcb.so", kept_dicom)
    assert not bundle_contents.is_dropped("PySide6/Qt/lib/libQt6Gui.so.6", kept_dicom)
    assert bundle_contents.is_dropped("pydicom/data/test_files/CT_small.dcm", kept_dicom)
    assert not bundle_contents.is_dropped("pydicom\\data\\test_files\\examples_palette.dcm", kept_dicom)
    assert not bundle_contents.is_dropped("models/us-breast-cls/weights.safetensors", kept_dicom)


def test_pyqtgraphs_qt_modules_are_not_excluded():
    assert not {"PySide6.QtCore", "PySide6.QtGui", "PySide6.QtWidgets", "PySide6.QtSvg", "PySide6.QtOpenGL",
                "PySide6.QtOpenGLWidgets"} & set(bundle_contents.UNUSED_QT_MODULES)


def test_build_venv_leaves_out_gpl_codec_and_torchvision_and_pins_the_flavours_torch():
    names = [build._name(r) for r in build.runtime_requirements("torch==2.13.0+cpu")]
    assert "pylibjpeg-libjpeg" not in names and "torchvision" not in names
    assert names.count("torch") == 1 and "torch==2.13.0+cpu" in build.runtime_requirements("torch==2.13.0+cpu")
    assert "python-gdcm" in names and "pydicom" in names


def test_the_scale_extra_never_goes_into_installers():
    """Ray and pyarrow (`predict --engine ray`) are an optional extra: the build venv does not install them
    and the spec excludes them and the one module that imports them."""
    names = [build._name(r) for r in build.runtime_requirements("torch==2.13.0+cpu")]
    assert "ray" not in names and "pyarrow" not in names
    assert {"ray", "pyarrow", "app.commands.ray_engine"} <= set(bundle_contents.UNUSED_MODULES)


def test_notices_name_a_licence_for_installed_distributions():
    pydicom = metadata.distribution("pydicom")
    assert "MIT" in notices.licence_of(pydicom)
    assert not {"pyinstaller", "pip"} & {d.metadata["Name"].lower() for d in notices.bundled_distributions()}


def test_committed_notices_leave_out_the_gpl_codec():
    text = (PACKAGING / "THIRD_PARTY_NOTICES.txt").read_text()
    assert "torch " in text and "PySide6" in text and "\npylibjpeg-libjpeg " not in text


def test_spec_and_workflow_are_portable():
    spec = (PACKAGING / "radlens.spec").read_text()
    assert not any(prefix in spec for prefix in ('"/usr', '"/opt', '"/lib', "/home/", "/work/"))
    assert "BUNDLE(" in spec and "sys.platform == \"darwin\"" in spec
    workflow = (ROOT / ".github" / "workflows" / "installers.yml").read_text()
    assert all(runner in workflow for runner in ("ubuntu-latest", "windows-latest", "macos-latest"))
    assert "packaging/build.py" in workflow


def test_desktop_entry_launches_the_bundled_executable():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(PACKAGING / "linux" / "radlens.desktop")
    section = entry["Desktop Entry"]
    assert section["Type"] == "Application" and section["Exec"].startswith("RadLens")
    assert section["Icon"] == "radlens" and (ROOT / "resources" / "radlens.png").is_file()
