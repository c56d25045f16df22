"""Installing the Debian packages a test needs (Orthanc, Xvfb): once, with apt-get, where this process may.

`install(packages, present)` returns None when `present()` holds, installing the packages first if need
be (root and apt-get required; `apt-get update` is tried when a first install fails), else why not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable


def install(packages: tuple[str, ...], present: Callable[[], bool]) -> str | None:
    if present():
        return None
    names = " ".join(packages)
    if not shutil.which("apt-get"):
        return f"{names} are not installed and there is no apt-get to install them (Debian: apt-get install {names})"
    if os.geteuid() != 0:
        return f"{names} are not installed and installing them needs root (sudo apt-get install {names})"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    log = []
    for attempt in (command, ["apt-get", "update"], command):
        try:
            done = subprocess.run(attempt, env=env, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"installing {names} failed: {error}"
        log.append(done.stdout[-2000:] + done.stderr[-2000:])
        if attempt is command and done.returncode == 0:
            break
    if present():
        return None
    return f"apt-get could not install {names}: " + " ".join(log[-1].split())[-300:]
