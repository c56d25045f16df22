"""The `radlens` command line: open studies in the window, the demo study, window screenshots."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app import __version__

COMMANDS = ("open", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="radlens",
        description="RadLens: read mammograms, ultrasound, MRI and radiographs (PNG, JPEG, DICOM).",
        epilog="`radlens PATH...` is short for `radlens open PATH...`.",
    )
    parser.add_argument("--version", action="version", version=f"RadLens {__version__}")
    commands = parser.add_subparsers(dest="command")
    opener = commands.add_parser("open", help="open files or folders in the viewer")
    opener.add_argument("paths", nargs="*", type=Path, help="DICOM, PNG or JPEG files, or folders")
    demo = commands.add_parser("demo", help="open the built-in demo study")
    for sub in (opener, demo):
        sub.add_argument("--screenshot", type=Path, metavar="OUT.png",
                         help="save a screenshot of the whole window once the study is drawn, then exit")
        sub.add_argument("--size", type=_size, default=None, metavar="WxH",
                         help="window size in pixels (default: remembered size, or 1600x1000 for screenshots)")
    return parser


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1600x1000, got {text!r}") from None
    if not (200 <= width <= 10000 and 200 <= height <= 10000):
        raise argparse.ArgumentTypeError("width and height must be between 200 and 10000 pixels")
    return width, height


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in COMMANDS and not argv[0].startswith("-"):
        argv.insert(0, "open")
    args = build_parser().parse_args(argv)
    command = args.command or "open"
    paths = list(getattr(args, "paths", []) or [])
    missing = [p for p in paths if not p.exists()]
    if missing:
        print("radlens: no such file or folder: " + ", ".join(map(str, missing)), file=sys.stderr)
        return 2
    from app.ui.application import run_viewer  # Qt is imported only when a window is wanted

    return run_viewer(
        paths=paths,
        demo=command == "demo",
        screenshot=getattr(args, "screenshot", None),
        size=getattr(args, "size", None),
    )
