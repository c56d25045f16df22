"""Smoke test of a frozen build: `python packaging/smoke_test.py dist/RadLens [--block-network]`.

In a scratch home it runs the bundled executable offscreen: `--version`, `models`, the demo study
with the default model drawn into a screenshot, and `predict` on the demo's images. Exit 0 when
every step worked, at least one prediction row was written, and no network use was attempted.

--block-network: the frozen app's runtime hook refuses and records every host lookup and internet
connection; on Linux as root the runs also happen in a network namespace with no network at all.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def executable(bundle: Path) -> Path:
    candidates = [bundle / "Contents" / "MacOS" / "RadLens", bundle / "radlens-cli.exe", bundle / "RadLens.exe",
                  bundle / "RadLens"]
    found = next((path for path in candidates if path.is_file()), None)
    if found is None:
        raise SystemExit(f"no RadLens executable in {bundle}")
    return found


def isolated_environment(home: Path, attempts: Path | None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("XDG_", "RADLENS_", "PYTHON"))}
    env.update(HOME=str(home), USERPROFILE=str(home), APPDATA=str(home / "AppData" / "Roaming"),
               LOCALAPPDATA=str(home / "AppData" / "Local"), QT_QPA_PLATFORM="offscreen",
               RADLENS_LOG_DIR=str(home / "logs"))
    if attempts is not None:
        env["RADLENS_FORBID_NETWORK"] = str(attempts)
    return env


def network_namespace_prefix() -> list[str]:
    """`unshare --net` where it works (Linux, root): the runs then have no network interface but loopback."""
    unshare = shutil.which("unshare")
    if not unshare or not sys.platform.startswith("linux"):
        return []
    probe = subprocess.run([unshare, "--net", "true"], capture_output=True)
    return [unshare, "--net"] if probe.returncode == 0 else []


class SmokeRun:
    def __init__(self, bundle: Path, home: Path, block_network: bool) -> None:
        self.exe, self.home = executable(bundle), home
        self.attempts = home / "network-attempts.txt" if block_network else None
        self.env = isolated_environment(home, self.attempts)
        self.prefix = network_namespace_prefix() if block_network else []
        self.failures: list[str] = []

    def run(self, name: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
        started = time.perf_counter()
        result = subprocess.run([*self.prefix, str(self.exe), *args], env=self.env, capture_output=True,
                                text=True, timeout=timeout, cwd=self.home)
        print(f"{name}: exit {result.returncode} in {time.perf_counter() - started:.1f} s", flush=True)
        if result.returncode != 0:
            self.failures.append(f"{name} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def check(self, ok: bool, failure: str) -> None:
        if not ok:
            self.failures.append(failure)

    def demo_inputs(self, bundle: Path) -> Path:
        """The demo's phantom mammograms (written by the demo run) plus the US and MR files bundled from pydicom."""
        folder = self.home / "predict-input"
        folder.mkdir(exist_ok=True)
        sources = [*self.home.rglob("mammography/*.dcm"), *bundle.rglob("pydicom/data/test_files/*.dcm")]
        for source in sources:
            shutil.copyfile(source, folder / source.name)
        self.check(bool(sources), "the demo run wrote no demo files")
        return folder


def smoke_test(bundle: Path, block_network: bool) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="radlens-smoke-") as scratch:
        home = Path(scratch)
        smoke = SmokeRun(bundle, home, block_network)
        print(f"executable: {smoke.exe}; network: "
              f"{'blocked (' + ('namespace + ' if smoke.prefix else '') + 'runtime guard)' if block_network else 'open'}")
        version = smoke.run("--version", "--version")
        smoke.check("RadLens" in version.stdout, f"--version printed {version.stdout!r}")
        models = smoke.run("models", "models")
        smoke.check(bool(models.stdout.strip()), "no model package found in the bundle")
        screenshot = home / "demo.png"
        smoke.run("demo --run-ai --screenshot", "demo", "--run-ai", "--screenshot", str(screenshot),
                  "--size", "1600x1000")
        smoke.check(screenshot.is_file() and screenshot.stat().st_size > 10_000, "no screenshot written")
        out = home / "predictions"
        smoke.run("predict", "predict", str(smoke.demo_inputs(bundle)), str(out))
        rows = list(csv.DictReader((out / "predictions.csv").open())) if (out / "predictions.csv").is_file() else []
        smoke.check(len(rows) >= 1, "predictions.csv has no prediction row")
        print(f"predictions: {len(rows)} row(s), models {sorted({row['model'] for row in rows})}")
        smoke.check((home / "logs" / "radlens.log").is_file(), "no log file written")
        if smoke.attempts is not None and smoke.attempts.is_file():
            smoke.failures.append("network use attempted:\n" + smoke.attempts.read_text())
        keep = os.environ.get("RADLENS_SMOKE_KEEP")  # a folder to keep the screenshot and predictions in
        if keep:
            shutil.copytree(home, keep, dirs_exist_ok=True, ignore=shutil.ignore_patterns("predict-input", ".cache"))
        return smoke.failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, nargs="?", default=Path("dist") / "RadLens")
    parser.add_argument("--block-network", action="store_true")
    args = parser.parse_args()
    failures = smoke_test(args.bundle.resolve(), args.block_network)
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    print("smoke test " + ("FAILED" if failures else "passed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
