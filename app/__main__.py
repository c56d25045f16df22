"""`python -m app`: set up the environment on first use from a source checkout, then run the CLI."""

import sys

from app.bootstrap import ensure_environment

if __name__ == "__main__":
    ensure_environment(["-m", "app", *sys.argv[1:]])
    from app.cli import main
    from app.crash_log import start_logging

    start_logging()

    sys.exit(main())
