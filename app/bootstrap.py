"""First-run set-up from a source checkout, standard library only.

`python3 -m app ...` and `python3 tests/run.py` start here. When RadLens' dependencies are not
importable, a virtual environment `.venv` is made beside `pyproject.toml`, the project is
installed into it (editable, with its test tools and the `scale` extra that the tests of
`predict --engine ray` need), and the command runs again inside it. The
install is redone when `pyproject.toml` changes. Frozen builds and installed copies skip all this.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import venv
from pathlib import Path

REQUIRED_MODULES = ("numpy", "PySide6", "pyqtgraph", "pydicom", "cv2", "superqt", "platformdirs", "torch")
REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_DIR = REPO_ROOT / ".venv"
STAMP_NAME = "radlens-install.sha256"
REEXEC_GUARD = "RADLENS_BOOTSTRAPPED"


def ensure_environment(argv: list[str]) -> None:
    """Return when this interpreter can run RadLens; otherwise set up `.venv` and re-run `argv` there."""
    if getattr(sys, "frozen", False) or not (REPO_ROOT / "pyproject.toml").is_file():
        return
    if _in_project_venv():
        if _stamp_matches():
            return
    elif _all_importable() and not VENV_DIR.exists():
        return
    python = _venv_python()
    if not python.exists() or not _stamp_matches():
        _install()
    if os.environ.get(REEXEC_GUARD) and _in_project_venv():
        sys.exit("RadLens set-up did not complete; see the pip output above.")
    env = {**os.environ, REEXEC_GUARD: "1"}
    result = subprocess.run([str(python), *argv], env=env)
    sys.exit(result.returncode)


def _install() -> None:
    """Everything goes to stderr: stdout belongs to the command being run (`radlens pacs find --json`)."""
    print(f"RadLens: setting up {VENV_DIR} (first run, a few minutes; no further downloads at run time)",
          file=sys.stderr, flush=True)
    if not _venv_python().exists():
        venv.EnvBuilder(with_pip=True, clear=VENV_DIR.exists()).create(VENV_DIR)
    pip = [str(_venv_python()), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off"]
    subprocess.run([*pip, "-e", f"{REPO_ROOT}[test,scale,train]"], check=True, stdout=sys.stderr)
    (VENV_DIR / STAMP_NAME).write_text(_pyproject_hash())
    print("RadLens: set-up complete", file=sys.stderr, flush=True)


def _venv_python() -> Path:
    return VENV_DIR / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _in_project_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV_DIR.resolve()


def _all_importable() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in REQUIRED_MODULES)


def _pyproject_hash() -> str:
    return hashlib.sha256((REPO_ROOT / "pyproject.toml").read_bytes()).hexdigest()


def _stamp_matches() -> bool:
    stamp = VENV_DIR / STAMP_NAME
    return stamp.is_file() and stamp.read_text().strip() == _pyproject_hash()
