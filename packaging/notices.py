"""Write THIRD_PARTY_NOTICES.txt: name, version and licence of every distribution bundled in the installer.

Run by build.py with the build venv's python and PyInstaller's tables of what it collected
(`--toc`): a distribution is listed when one of its files went into the bundle. The licence files
the distributions ship are copied beside the notices, under `licenses/<name>/`.
"""

from __future__ import annotations

import argparse
import ast
import platform
import shutil
from importlib import metadata
from pathlib import Path

# In the build venv only to build: never frozen into the app.
BUILD_ONLY = {"pyinstaller", "pyinstaller-hooks-contrib", "altgraph", "pip", "setuptools", "wheel"}
LICENCE_FILE_STARTS = ("license", "licence", "copying", "notice", "authors")
HEADER = """RadLens third-party notices

RadLens ({python}) bundles the distributions below. Each keeps its own licence; the licence files
they ship are in the folder `licenses/` beside this file. Qt (inside PySide6) is used under the
LGPL-3.0: its libraries are separate shared files in this folder and may be replaced by the user.
torch, numpy, opencv-python-headless and pillow embed further libraries (OpenMP, OpenBLAS, FFmpeg,
libjpeg-turbo, ...) whose notices are in their licence files. pylibjpeg-libjpeg (GPL-3.0) is
deliberately not bundled.

"""


def licence_of(dist: metadata.Distribution) -> str:
    meta = dist.metadata
    expression = meta.get("License-Expression")
    if expression:
        return expression
    classifiers = [c.split(" :: ")[-1] for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    text = (meta.get("License") or "").strip()
    short = text.splitlines()[0][:80] if text and len(text) < 200 else ""
    return "; ".join(dict.fromkeys(filter(None, [short, *classifiers]))) or "see its licence files"


def collected_sources(tocs: list[Path]) -> set[str]:
    """Source paths in PyInstaller's tables of contents (PYZ-00.toc, COLLECT-00.toc): nested tuples of strings."""
    sources: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, (list, tuple)):
            for item in node:
                walk(item)
        elif isinstance(node, str) and ("/" in node or "\\" in node):
            sources.add(str(Path(node).resolve()))

    for toc in tocs:
        walk(ast.literal_eval(toc.read_text(encoding="utf-8")))
    return sources


def bundled_distributions(sources: set[str] | None = None) -> list[metadata.Distribution]:
    """Installed distributions, less build tools; with `sources`, only those with a file among them."""
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if not name or name.lower() in BUILD_ONLY:
            continue
        if sources is None or any(str(Path(dist.locate_file(f)).resolve()) in sources for f in dist.files or []):
            found.setdefault(name.lower(), dist)
    return [found[key] for key in sorted(found)]


def copy_licence_files(dist: metadata.Distribution, folder: Path) -> int:
    copied = 0
    for file in dist.files or []:
        if ".dist-info" in str(file) and Path(str(file)).name.lower().startswith(LICENCE_FILE_STARTS):
            source = Path(dist.locate_file(file))
            if source.is_file():
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, folder / source.name)
                copied += 1
    return copied


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the notices file to write")
    parser.add_argument("--toc", type=Path, nargs="*", default=[], help="PyInstaller's PYZ-00.toc and COLLECT-00.toc")
    args = parser.parse_args()
    out = args.out
    lines = [HEADER.format(python=f"Python {platform.python_version()}, PSF-2.0")]
    for dist in bundled_distributions(collected_sources(args.toc) if args.toc else None):
        name = dist.metadata["Name"]
        copy_licence_files(dist, out.parent / "licenses" / name)
        lines.append(f"{name} {dist.version}: {licence_of(dist)}")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out} ({len(lines) - 1} distributions)")


if __name__ == "__main__":
    main()
