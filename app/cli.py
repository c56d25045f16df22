"""The `radlens` command line: open studies in the window, the demo study, window screenshots."""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from pathlib import Path

from app import __version__
from app.inference.options import DEVICE_CHOICES  # plain values: importing it loads no torch

COMMANDS = ("open", "demo", "models", "predict", "train", "pacs", "deid")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="radlens",
        description="RadLens: read mammograms, ultrasound, MRI and radiographs (PNG, JPEG, DICOM).",
        epilog="`radlens PATH...` is short for `radlens open PATH...`.",
    )
    parser.add_argument("--version", action="version", version=f"RadLens {__version__}")
    commands = parser.add_subparsers(dest="command")
    opener = commands.add_parser("open", help="open files or folders in the viewer")
    opener.add_argument("paths", nargs="*", type=Path, help="DICOM, PNG or JPEG files, or folders")
    demo = commands.add_parser("demo", help="open the built-in demo study")
    for sub in (opener, demo):
        sub.add_argument("--screenshot", type=Path, metavar="OUT.png",
                         help="save a screenshot of the whole window once the study is drawn, then exit")
        sub.add_argument("--size", type=_size, default=None, metavar="WxH",
                         help="window size in pixels (default: remembered size, or 1600x1000 for screenshots)")
        sub.add_argument("--run-ai", action="store_true",
                         help="run the default model on the study once it is drawn (before any screenshot)")
    models = commands.add_parser("models", help="list the installed model packages, or import one")
    models_commands = models.add_subparsers(dest="models_command")
    importer = models_commands.add_parser(
        "import", help="install a model package folder, or an official GLAM checkpoint (.ckpt/.pt/.pth), "
                       "for this user")
    importer.add_argument("path", type=Path)
    guard = models_commands.add_parser(
        "guard", help="fit a model's out-of-distribution guard on its training images (on the shared trunk), "
                      "so that images without a modality that look like them are routed to it")
    guard.add_argument("name", help="installed model package")
    guard.add_argument("images", type=Path, help="a folder of the model's training images")
    predict = commands.add_parser("predict", help="run a model on every image in a folder")
    predict.add_argument("input", type=Path, help="an image file or a folder (searched recursively)")
    predict.add_argument("output", type=Path, help="folder for predictions.csv, masks/ and visualizations/")
    predict.add_argument("--model", help="model name (default: the model for each image's modality)")
    predict.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    predict.add_argument("--no-visualizations", action="store_true", help="skip the per-image result pictures")
    predict.add_argument("--exam-list", type=Path, metavar="PKL",
                         help="GLAM exam list (pickle of plain lists and dicts): adds benign_label and "
                              "malignant_label to a GLAM model's predictions.csv")
    predict.add_argument("--engine", choices=("local", "ray"), default="local",
                         help="local: this process, one image after another (default); ray: Ray Data, decoding in "
                              "tasks and each model held once per actor, on this machine or a cluster "
                              "(needs `pip install radlens[scale]`)")
    predict.add_argument("--address", metavar="HOST:PORT",
                         help="ray: the cluster to join (default: a Ray started on this machine for the run)")
    predict.add_argument("--workers", type=int, metavar="N",
                         help="ray: model actors (default: one per CPU, or per GPU fraction, of the cluster)")
    predict.add_argument("--gpus-per-actor", type=float, default=None, metavar="F",
                         help="ray: GPU share each actor asks for (default 0.25 when the cluster has GPUs and "
                              "--device is not cpu; 0 runs on CPUs)")
    predict.add_argument("--memory-mb", type=int, default=None, metavar="MB",
                         help="ray: bound on decoded images queued between decoding and the models "
                              "(default 64 per actor, at least 512)")
    predict.add_argument("--studies", action="store_true",
                         help="INPUT is a text file of Study Instance UIDs (one per line): fetch them from the PACS "
                              "(radlens pacs config) a batch at a time into the cache and read each batch; "
                              "run again to resume")
    predict.add_argument("--batch", type=int, default=10, metavar="N",
                         help="with --studies: studies fetched and read per batch (default 10)")
    predict.add_argument("--send", action="store_true",
                         help="then send a findings SR per DICOM study (and a DICOM SEG per mask) to the PACS of "
                              "`radlens pacs config`; the files are kept in OUTPUT/dicom")
    commands.add_parser("pacs", add_help=False, help="query, retrieve from and send to a PACS (see `radlens pacs --help`)")
    commands.add_parser("deid", add_help=False, help="de-identify a DICOM study (see `radlens deid --help`)")
    commands.add_parser("train", add_help=False,
                        help="reproduce a shipped model from ../shared/datasets (see `radlens train --help`)")
    return parser


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1600x1000, got {text!r}") from None
    if not (200 <= width <= 10000 and 200 <= height <= 10000):
        raise argparse.ArgumentTypeError("width and height must be between 200 and 10000 pixels")
    return width, height


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in COMMANDS and not argv[0].startswith("-"):
        argv.insert(0, "open")
    if argv and argv[0] == "train":
        try:
            from app.training.__main__ import main as train
        except ImportError:  # installers leave the training code out
            print("radlens: training needs a source checkout (see README.md); this installation has no "
                  "training code", file=sys.stderr)
            return 2
        return train(argv[1:])
    if argv and argv[0] == "pacs":
        from app.pacs.cli import main as pacs

        return pacs(argv[1:])
    if argv and argv[0] == "deid":
        from app.export.deid_cli import main as deid

        return deid(argv[1:])
    args = build_parser().parse_args(argv)
    command = args.command or "open"
    if command == "models":
        if args.models_command == "guard":
            return fit_guard(args.name, args.images)
        return import_model(args.path) if args.models_command == "import" else list_models()
    if command == "predict":
        return predict(args)
    paths = list(getattr(args, "paths", []) or [])
    missing = [p for p in paths if not p.exists()]
    if missing:
        print("radlens: no such file or folder: " + ", ".join(map(str, missing)), file=sys.stderr)
        return 2
    from app.ui.application import run_viewer  # Qt is imported only when a window is wanted

    return run_viewer(
        paths=paths,
        demo=command == "demo",
        screenshot=getattr(args, "screenshot", None),
        size=getattr(args, "size", None),
        run_ai=getattr(args, "run_ai", False),
    )


def list_models() -> int:
    from app.inference.package_check import check_package
    from app.inference.registry import ModelRegistry, model_dirs

    log = logging.getLogger("radlens.models")
    registry = ModelRegistry.discover()
    if not registry.models:
        print("No models installed. Model folders are read from: " + ", ".join(map(str, model_dirs())))
    unusable = [(p.path, p.reason) for p in registry.problems]
    for model in registry.models:
        status = check_package(model)
        print(f"{model.name:18s} {model.version:8s} {'/'.join(model.modalities):8s} {model.task:15s} "
              f"classes: {', '.join(model.classes)}   ({model.folder})   {status.summary}")
        if status.problem:
            unusable.append((model.folder, status.problem))
    for path, reason in unusable:
        log.warning("Unusable model package %s: %s", path, reason)
        print(f"unusable: {path}: {reason}", file=sys.stderr)
    return 0 if not unusable else 1


def import_model(path: Path) -> int:
    from app.inference.manifest import ModelPackageError
    from app.inference.model_import import import_model as install

    try:
        manifest = install(path)
    except ModelPackageError as error:
        logging.getLogger("radlens.models").warning("Not imported %s: %s", error.path, error.reason)
        print(f"radlens: cannot import {error.path}: {error.reason}", file=sys.stderr)
        return 1
    print(f"imported {manifest.name} {manifest.version} ({manifest.task}, {'/'.join(manifest.modalities)}) "
          f"into {manifest.folder}")
    return 0


def fit_guard(name: str, images: Path) -> int:
    from app.commands.guard import fit_guard as fit
    from app.core.progress import terminal_progress
    from app.inference.manifest import ModelPackageError
    from app.inference.registry import ModelRegistry

    try:
        manifest, problems = fit(ModelRegistry.discover().get(name), images, progress=terminal_progress)
    except (KeyError, ModelPackageError, OSError) as error:
        print(f"radlens: {error.args[0] if isinstance(error, KeyError) and error.args else error}", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"skipped {problem.path}: {problem.reason}", file=sys.stderr)
    print(f"{manifest.name}: guard fitted and recorded in {manifest.folder / 'model.json'}")
    return 0


def _predict_pacs_studies(args: argparse.Namespace, engine):
    from app.commands.pacs_batches import predict_studies, read_study_uids
    from app.pacs.settings import PacsSettingsError, load_settings

    if args.send:
        print("radlens: --studies and --send: send the results of a PACS batch run with a second, "
              "local run over the cache", file=sys.stderr)
        return None
    try:
        settings = load_settings()
    except PacsSettingsError as error:
        print(f"radlens: --studies: {error}", file=sys.stderr)
        return None
    uids = read_study_uids(args.input)
    return predict_studies(uids, args.output, settings, engine, batch_size=args.batch,
                           say=lambda text: print(text, file=sys.stderr, flush=True))


def predict(args: argparse.Namespace) -> int:
    from app.core.text import printable

    if not args.input.exists():
        print(f"radlens: no such file or folder: {args.input}", file=sys.stderr)
        return 2
    bundle = pacs = None
    if args.send:
        if args.engine == "ray":
            print("radlens: --send needs the local engine (its findings SR gathers every result of the run)",
                  file=sys.stderr)
            return 2
        from app.export.results_bundle import BundleWriter
        from app.pacs.settings import PacsSettingsError, load_settings

        try:
            pacs = load_settings()
        except PacsSettingsError as error:
            print(f"radlens: --send: {error}", file=sys.stderr)
            return 2
        bundle = BundleWriter(args.output / "dicom")
    options = dict(model_name=args.model, device=args.device, visualizations=not args.no_visualizations,
                   show_progress=True, exam_list=args.exam_list)
    try:
        if args.engine == "ray":
            try:
                from app.commands.ray_engine import predict_folder_ray
            except ImportError as error:
                print(f"radlens: --engine ray needs Ray ({error}); install it with "
                      "`pip install 'radlens[scale]'` (see docs/scale.md)", file=sys.stderr)
                return 2
            engine = functools.partial(predict_folder_ray, address=args.address, workers=args.workers,
                                       gpus_per_actor=args.gpus_per_actor, memory_mb=args.memory_mb, **options)
        else:
            from app.commands.predict import predict_folder

            engine = functools.partial(predict_folder, bundle=bundle, **options)
        if args.studies:
            report = _predict_pacs_studies(args, engine)
            if report is None:
                return 2
        else:
            report = engine(args.input, args.output)
    except (KeyError, ValueError, OSError) as error:
        print(f"radlens: {error.args[0] if isinstance(error, KeyError) and error.args else error}", file=sys.stderr)
        return 2
    log = logging.getLogger("radlens.predict")
    for problem in report.problems:
        log.warning("Skipped %s: %s", printable(str(problem.path)), problem.reason)
        print(f"skipped {printable(str(problem.path))}: {problem.reason}", file=sys.stderr)
    print(report.summary() + f"; results in {printable(str(args.output / 'predictions.csv'))}")
    if bundle is not None:
        from app.commands.send_results import send_bundle

        sent = send_bundle(pacs, bundle.finish())
        print(sent.summary())
        if not sent.ok:
            return 1
    return 0 if report.predicted else 1
