"""Runs the whole test suite: `python3 tests/run.py` (sets up .venv on first use, like the app).

Extra arguments go to pytest, e.g. `python3 tests/run.py -k hanging -x`.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from app.bootstrap import ensure_environment  # noqa: E402

if __name__ == "__main__":
    ensure_environment([str(Path(__file__).resolve()), *sys.argv[1:]])
    import pytest

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.chdir(Path(__file__).resolve().parents[1])
    sys.exit(pytest.main(["-p", "no:cacheprovider", *sys.argv[1:]]))
