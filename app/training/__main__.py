"""`radlens train MODEL`: reproduce a shipped model from ../shared and write its package to OUT/MODEL.

The CNN models run in three steps that can also run apart, so the middle one can go to a GPU machine:
`--pack-only DIR` decodes the images once into DIR (one .npz per data set), `--run-only DIR --data DIR` trains
from those packs and leaves DIR/MODEL (weights, guard, run.json), `--from-run DIR` writes the package from it.
Without these flags all three run here, one after the other. `radlens train mg-glam-lite --help` lists the
mammography model's own options.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

GLAM = "mg-glam-lite"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [GLAM]:  # before anything else is imported: it runs without Qt, DICOM or platformdirs
        from app.training.glam_lite_command import main as train_glam_lite

        return train_glam_lite(argv[1:])
    from app.paths import install_root
    from app.training.recipes import PLANS, SEGMENTATION

    parser = argparse.ArgumentParser(prog="radlens train", description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=sorted([*PLANS, SEGMENTATION, GLAM]))
    parser.add_argument("--out", type=Path, default=install_root() / "models")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs (quick checks)")
    parser.add_argument("--data", type=Path, default=None, help="folder of image packs (default: the user cache)")
    parser.add_argument("--imagenet", type=Path, default=None,
                        help="copies of the ImageNet weights: Lite0's file, or a folder of the packages' "
                             "efficientnet-liteN-*.pth files (default: the installed packages')")
    parser.add_argument("--variants", default=None, metavar="lite0,lite1,...",
                        help="EfficientNet-Lite sizes to try, each with every candidate recipe, on the shifted "
                             "validation; the best is kept (default: the shipped plan's, lite0; lite1 and lite2 "
                             "need the [train] extra)")
    parser.add_argument("--pack-only", action="store_true", help="only decode the images into --data")
    parser.add_argument("--run-only", type=Path, default=None, help="train and leave the run in DIR/MODEL")
    parser.add_argument("--from-run", type=Path, default=None, help="write the package from DIR/MODEL")
    parser.add_argument("--limit", type=int, default=None, help="use the first N images per class (smoke test)")
    parser.add_argument("--latency-only", action="store_true",
                        help="only measure the CPU latency of the package in OUT again (on a quiet machine)")
    args = parser.parse_args(argv)
    from app.training.cnn_command import train_cnn

    try:
        return train_cnn(args)
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
