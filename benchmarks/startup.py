"""Cold start to a drawn window, from source and from the frozen build (dist/RadLens) when there is one.

    .venv/bin/python benchmarks/startup.py [--runs 5]

Each run is a new process, offscreen, timed from its launch to its exit after the window was drawn
and saved (`--screenshot`): an empty window, and the four-view demo study. The first run (cold
file cache right after a build) is reported apart from the best of the others. Goal: <= 3 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 3.0
SCENES = {"empty window": ["open"], "demo study": ["demo"]}


def commands() -> dict[str, list[str]]:
    found = {"source": [sys.executable, "-m", "app"]}
    frozen = ROOT / "dist" / "RadLens" / ("RadLens.exe" if os.name == "nt" else "RadLens")
    if frozen.is_file():
        found["frozen"] = [str(frozen)]
    return found


def time_run(command: list[str], env: dict[str, str], out: Path) -> float:
    started = time.perf_counter()
    subprocess.run([*command, "--screenshot", str(out), "--size", "1600x1000"], env=env, cwd=ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    elapsed = time.perf_counter() - started
    if not out.is_file():
        raise SystemExit(f"{' '.join(command)} drew nothing")
    out.unlink()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory(prefix="radlens-startup-") as scratch:
        home = Path(scratch)
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CACHE_HOME": str(home / "cache"),
               "XDG_CONFIG_HOME": str(home / "config"), "RADLENS_LOG_DIR": str(home / "logs")}
        best: dict[tuple[str, str], float] = {}
        print(f"{'build':8s} {'scene':14s} {'first':>8s} {'best':>8s}  goal {GOAL_S:.0f} s")
        for build, command in commands().items():
            for scene, args in SCENES.items():
                times = [time_run([*command, *args], env, home / "shot.png") for _ in range(runs)]
                best[build, scene] = min(times[1:] or times)
                verdict = "PASS" if best[build, scene] <= GOAL_S else "MISS"
                print(f"{build:8s} {scene:14s} {times[0]:7.2f}s {best[build, scene]:7.2f}s  {verdict}", flush=True)
        for scene in SCENES:
            if ("frozen", scene) in best:
                print(f"frozen / source, {scene}: {best['frozen', scene] / best['source', scene]:.2f}x")


if __name__ == "__main__":
    main()
