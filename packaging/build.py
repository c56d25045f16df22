"""Build the offline installer: `python3 packaging/build.py [--flavour cpu|cuda]`.

1. a build venv of its own (`build/venv-<flavour>`; the dev `.venv` is never touched) with the
   runtime dependencies from pyproject.toml, the flavour's torch and PyInstaller, less what
   `bundle_contents.LEFT_OUT_DISTRIBUTIONS` names;
2. PyInstaller with `packaging/radlens.spec` -> `dist/RadLens/` (`dist/RadLens.app` on macOS);
3. THIRD_PARTY_NOTICES.txt from the bundled distributions' metadata;
4. the smoke test of the frozen app, with the network blocked (`--no-smoke` skips it);
5. the archive to hand over: `dist/RadLens-<version>-<os>-<arch>-<flavour>.tar.gz` (.zip on Windows).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

PACKAGING = Path(__file__).resolve().parent
ROOT = PACKAGING.parent
sys.path.insert(0, str(PACKAGING))
from bundle_contents import LEFT_OUT_DISTRIBUTIONS, STRIPPED_LIBRARIES, TORCH_REQUIREMENT  # noqa: E402

BUILD_TOOLS = ["pyinstaller>=6.10"]
# Bundled in place of pylibjpeg-libjpeg (GPL-3.0): GDCM (BSD) decodes JPEG lossless and 12-bit extended DICOM.
BUNDLE_CODECS = ["python-gdcm>=3.0.24"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flavour", choices=sorted(TORCH_REQUIREMENT), default="cpu")
    parser.add_argument("--torch", help="torch requirement to bundle (default: the flavour's)")
    parser.add_argument("--pip-args", default="", help="extra pip arguments, e.g. an --extra-index-url for torch")
    parser.add_argument("--naive", action="store_true", help="no cuts: measure what an unpruned bundle weighs")
    parser.add_argument("--no-smoke", action="store_true", help="skip the smoke test of the frozen app")
    parser.add_argument("--no-archive", action="store_true", help="skip the compressed archive")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="output folder (default: dist)")
    args = parser.parse_args(argv)

    python = build_venv(args.flavour, args.torch or TORCH_REQUIREMENT[args.flavour], args.pip_args.split())
    bundle, work = freeze(python, args.flavour, args.naive, args.dist.resolve())
    if sys.platform.startswith("linux"):
        shutil.copy2(PACKAGING / "linux" / "install-desktop-entry.sh", bundle)
        if not args.naive:
            strip_symbols(bundle)
    notices = bundle_data_folder(bundle) / "THIRD_PARTY_NOTICES.txt"
    run([python, PACKAGING / "notices.py", "--out", notices, "--toc", *sorted(work.glob("*/PYZ-00.toc")),
         *sorted(work.glob("*/COLLECT-00.toc"))])
    if args.flavour == "cpu" and not args.naive and sys.platform.startswith("linux"):
        shutil.copyfile(notices, PACKAGING / "THIRD_PARTY_NOTICES.txt")
    report_sizes(bundle, ROOT / "build" / f"sizes-{args.flavour}{'-naive' if args.naive else ''}.txt")
    if not args.no_smoke:
        run([python, PACKAGING / "smoke_test.py", bundle, "--block-network"])
    if not args.no_archive:
        print(f"archive: {make_archive(bundle, args.flavour)}", flush=True)
    return 0


def run(command: list, **kwargs) -> None:
    print("+", " ".join(map(str, command)), flush=True)
    subprocess.run([str(c) for c in command], check=True, **kwargs)


def runtime_requirements(torch: str) -> list[str]:
    """pyproject's dependencies with the flavour's torch and GDCM, without the left-out distributions."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    kept = [d for d in dependencies if _name(d) not in {*LEFT_OUT_DISTRIBUTIONS, "torch"}]
    return [*kept, *BUNDLE_CODECS, torch]


def _name(requirement: str) -> str:
    for stop in "<>=!~;[ ":
        requirement = requirement.split(stop, 1)[0]
    return requirement.strip().lower()


def build_venv(flavour: str, torch: str, pip_args: list[str]) -> Path:
    """The flavour's build venv, (re)installed when its requirements changed; returns its python."""
    folder = ROOT / "build" / f"venv-{flavour}"
    python = folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    requirements = [*runtime_requirements(torch), *BUILD_TOOLS]
    stamp = folder / "radlens-build.sha256"
    digest = hashlib.sha256("\n".join([*requirements, *pip_args]).encode()).hexdigest()
    if python.exists() and stamp.is_file() and stamp.read_text() == digest:
        return python
    if not python.exists():
        venv.EnvBuilder(with_pip=True, clear=folder.exists()).create(folder)
    run([python, "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off",
         *pip_args, *requirements])
    stamp.write_text(digest)
    return python


def freeze(python: Path, flavour: str, naive: bool, dist: Path) -> tuple[Path, Path]:
    """Runs PyInstaller; returns the bundle and PyInstaller's work folder."""
    env = {**os.environ, "RADLENS_FLAVOUR": flavour, "RADLENS_NAIVE": "1" if naive else ""}
    work = ROOT / "build" / f"pyinstaller-{flavour}{'-naive' if naive else ''}"
    run([python, "-m", "PyInstaller", PACKAGING / "radlens.spec", "--noconfirm", "--clean",
         "--distpath", dist, "--workpath", work], env=env)
    return dist / ("RadLens.app" if sys.platform == "darwin" else "RadLens"), work


def strip_symbols(bundle: Path) -> None:
    strip = shutil.which("strip")
    if strip is None:
        print("strip not found: libraries keep their symbol tables", flush=True)
        return
    for pattern in STRIPPED_LIBRARIES:
        for library in (bundle / "_internal").glob(pattern):
            if library.is_file() and not library.is_symlink():
                run([strip, "--strip-unneeded", library])


def bundle_data_folder(bundle: Path) -> Path:
    """The bundle's folder a user sees first (the .app's Resources on macOS)."""
    return bundle / "Contents" / "Resources" if bundle.suffix == ".app" else bundle


def folder_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def report_sizes(bundle: Path, out: Path) -> None:
    """The bundle's total and its twelve largest top-level parts, in MB; printed and written to `out`."""
    internal = next((p for p in (bundle / "_internal", bundle / "Contents" / "Frameworks") if p.is_dir()), bundle)
    parts = sorted(((folder_size(p), p.name) for p in internal.iterdir() if not p.is_symlink()), reverse=True)[:12]
    lines = [f"{folder_size(bundle) / 1e6:9.1f} MB  {bundle.name} (total)"]
    lines += [f"{size / 1e6:9.1f} MB  {name}" for size, name in parts]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


def make_archive(bundle: Path, flavour: str) -> Path:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    system = {"win32": "windows", "darwin": "macos"}.get(sys.platform, "linux")
    base = bundle.parent / f"RadLens-{version}-{system}-{platform.machine().lower()}-{flavour}"
    fmt = "zip" if os.name == "nt" else "gztar"
    return Path(shutil.make_archive(str(base), fmt, root_dir=bundle.parent, base_dir=bundle.name))


if __name__ == "__main__":
    sys.exit(main())
