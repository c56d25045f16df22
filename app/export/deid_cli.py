"""`radlens deid IN OUT`: a de-identified copy of a study folder (or file), with burned-in text flagged."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.core.text import printable


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="radlens deid", description=(
        "Write de-identified copies of the DICOM files in IN to OUT (PS3.15 basic profile via dicognito: names "
        "and IDs replaced, dates shifted by one offset, UIDs remapped consistently). Files whose pixels may "
        "carry text are listed: check them before sharing."))
    parser.add_argument("input", type=Path, help="a DICOM file or a folder (searched recursively)")
    parser.add_argument("output", type=Path, help="a new or empty folder")
    parser.add_argument("--seed", help="repeatable mapping across exports (keep it secret); default: random")
    args = parser.parse_args(argv)
    from app.export.deid import DeidError, deidentify

    if not args.input.exists():
        print(f"radlens deid: no such file or folder: {printable(str(args.input))}", file=sys.stderr)
        return 2
    inputs = sorted(p for p in args.input.rglob("*") if p.is_file()) if args.input.is_dir() else [args.input]
    try:
        report = deidentify(inputs, args.output, seed=args.seed)
    except (DeidError, OSError) as error:
        print(f"radlens deid: {error}", file=sys.stderr)
        return 2
    for path, reason in report.burned_in:
        print(f"CHECK PIXELS {printable(str(path))}: {reason}")
    skipped = f", {report.skipped} file(s) skipped (not DICOM)" if report.skipped else ""
    print(f"{len(report.written)} file(s) de-identified into {printable(str(args.output))}{skipped}")
    return 0 if report.written else 1
