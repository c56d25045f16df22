"""Entry point of the frozen app: the `radlens` command line, with the log file started first."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from app.crash_log import start_logging

    start_logging()
    from app.cli import main

    sys.exit(main())
