"""The log file: a rotating file in the user's log folder that RadLens writes to, from source and frozen.

`start_logging()` is called once by every entry point (it is idempotent). When a frozen windowed
build has no console, `sys.stdout` and `sys.stderr` are None; they then go to the log too.
"""

from __future__ import annotations

import logging
import os
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

LOG_FILE_NAME = "radlens.log"
LOG_DIR_VARIABLE = "RADLENS_LOG_DIR"  # overrides the user log folder (tests, portable installs)
MAX_LOG_BYTES = 2_000_000
LOG_BACKUPS = 3
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(threadName)s] %(message)s"

_handler: RotatingFileHandler | None = None


def log_folder() -> Path:
    override = os.environ.get(LOG_DIR_VARIABLE)
    if override:
        return Path(override)
    from platformdirs import user_log_dir

    return Path(user_log_dir("RadLens", appauthor=False))


def log_path() -> Path:
    """Where the log is written (or would be, before `start_logging`)."""
    return Path(_handler.baseFilename) if _handler else log_folder() / LOG_FILE_NAME


def start_logging(level: int = logging.INFO) -> Path:
    """Send RadLens' log records to the rotating log file; returns its path. A second call changes nothing."""
    global _handler
    if _handler is not None:
        return log_path()
    folder = log_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(folder / LOG_FILE_NAME, maxBytes=MAX_LOG_BYTES, backupCount=LOG_BACKUPS,
                                      encoding="utf-8", delay=True)
    except OSError as error:  # a read-only home must not stop the viewer
        print(f"radlens: cannot write the log in {folder}: {error}", file=sys.stderr)
        return folder / LOG_FILE_NAME
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    logging.getLogger("radlens").setLevel(min(level, logging.getLogger("radlens").getEffectiveLevel()))
    logging.captureWarnings(True)
    _handler = handler
    _streams_without_console_to_log()
    logging.getLogger("radlens").info("RadLens started (%s)", "frozen" if getattr(sys, "frozen", False) else "source")
    return log_path()


def stop_logging() -> None:
    """Detach and close the log file (tests; the next `start_logging` opens it again)."""
    global _handler
    if _handler is not None:
        logging.getLogger().removeHandler(_handler)
        _handler.close()
        _handler = None


class _LogStream:
    """A write-only text stream whose lines become log records (stdout/stderr of a windowed build)."""

    def __init__(self, logger: logging.Logger, level: int) -> None:
        self.logger, self.level, self.encoding = logger, level, "utf-8"

    def write(self, text: str) -> int:
        for line in text.rstrip().splitlines():
            self.logger.log(self.level, line)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _streams_without_console_to_log() -> None:
    if sys.stdout is None:
        sys.stdout = _LogStream(logging.getLogger("radlens.stdout"), logging.INFO)
    if sys.stderr is None:
        sys.stderr = _LogStream(logging.getLogger("radlens.stderr"), logging.ERROR)
