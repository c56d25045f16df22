"""A progress bar on the terminal (stderr) for long batch runs and training."""

from __future__ import annotations

import sys


def terminal_progress(done: int, total: int) -> None:
    width = 30
    filled = round(width * done / max(total, 1))
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()
