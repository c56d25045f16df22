"""Signed 16-bit frames (CT, MR) draw as fast as unsigned ones (app/core/display.drawable).

pyqtgraph's ImageItem folds levels into its lookup table, one table lookup per pixel, only for
unsigned 8- and 16-bit data; int16 used to take its general path (float rescale, then lookup). The
viewport now hands int16 frames over as unsigned (a bit flip) with the levels shifted alike.
Measured: setImage + render (the QImage pyqtgraph paints) of one 2048 x 2048 frame, best of
--repeats, for uint16, int16 as before (handed over signed) and int16 through `drawable`; the
ratio to uint16 is the figure (same run, so machine noise cancels). Offscreen Qt.
Usage: python benchmarks/signed16.py [--size 2048] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def best_render(item, pixels, transfer, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        item.setImage(pixels, autoLevels=False, levels=transfer.levels, lut=transfer.lut)
        item.render()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    import pyqtgraph as pg
    from PySide6 import QtWidgets

    from app.core.display import DisplayTransfer, drawable

    QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    rng = np.random.default_rng(0)
    signed = rng.integers(-1024, 3072, (args.size, args.size)).astype(np.int16)
    unsigned = (signed.astype(np.int32) + 1024).astype(np.uint16)
    lut = np.arange(256, dtype=np.uint8)
    item = pg.ImageItem(axisOrder="row-major")
    base = best_render(item, unsigned, DisplayTransfer((924.0, 2424.0), lut), args.repeats)
    old = best_render(item, signed, DisplayTransfer((-100.0, 1400.0), lut), args.repeats)
    shown, shifted = drawable(signed, DisplayTransfer((-100.0, 1400.0), lut))
    start = time.perf_counter()
    drawable(signed, DisplayTransfer((-100.0, 1400.0), lut))
    flip = time.perf_counter() - start
    new = best_render(item, shown, shifted, args.repeats)
    print(f"pyqtgraph {pg.__version__}, {args.size} x {args.size}, best of {args.repeats}")
    print("| frame | ms per draw | / uint16 |")
    print("|---|---|---|")
    print(f"| uint16 | {1000 * base:.1f} | 1.00 |")
    print(f"| int16 handed over signed (before) | {1000 * old:.1f} | {old / base:.2f} |")
    print(f"| int16 through drawable (now; + {1000 * flip:.1f} ms bit flip once per frame) | {1000 * new:.1f} | "
          f"{new / base:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
