"""`radlens pacs ...`: settings, echo, find, get, send, serve and the list of cached studies."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from app.core.text import printable
from app.pacs.dimse import PacsError
from app.pacs.settings import PacsSettingsError, load_settings, save_settings, settings_path, with_changes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlens pacs", description="Query, retrieve from and send to a PACS.")
    commands = parser.add_subparsers(dest="command", required=True)
    config = commands.add_parser("config", help="show the PACS settings, or change them: name=value ...")
    config.add_argument("assignments", nargs="*", metavar="name=value")
    commands.add_parser("echo", help="test the connection: C-ECHO, and a QIDO-RS search when dicomweb_url is set")
    find = commands.add_parser("find", help="search studies (C-FIND at study level, or QIDO-RS with --web)")
    find.add_argument("--name", default="", help="patient name, DICOM wildcards allowed (DOE^*)")
    find.add_argument("--id", default="", help="patient ID")
    find.add_argument("--from", dest="date_from", default="", metavar="YYYYMMDD", help="study date from")
    find.add_argument("--to", dest="date_to", default="", metavar="YYYYMMDD", help="study date to")
    find.add_argument("--modality", default="", help="e.g. MG")
    find.add_argument("--accession", default="")
    find.add_argument("--json", action="store_true", help="print the matches as JSON")
    get = commands.add_parser("get", help="retrieve a study into the cache (C-GET, or WADO-RS with --web); "
                                          "run again to resume")
    get.add_argument("study_uid")
    get.add_argument("--move", action="store_true", help="C-MOVE to our storage SCP instead of C-GET "
                                                         "(the default when retrieve_by_move is set)")
    send = commands.add_parser("send", help="send DICOM files to the PACS (C-STORE, or STOW-RS with --web)")
    send.add_argument("files", nargs="+", type=Path)
    for sub in (find, get, send):
        sub.add_argument("--web", action="store_true", help="use DICOMweb (dicomweb_url) instead of DIMSE "
                                                             "(the default when prefer_dicomweb is set)")
    serve = commands.add_parser("serve", help="run the storage SCP: receive studies pushed to RadLens")
    serve.add_argument("--seconds", type=float, default=None, help="stop after this long (default: Ctrl+C)")
    commands.add_parser("list", help="the studies in the cache, and what partial ones lack")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        if args.command == "config":
            return config(settings, args.assignments)
        return COMMANDS[args.command](settings, args)
    except (PacsError, PacsSettingsError, ValueError, OSError) as error:
        print(f"radlens pacs {args.command}: {error}", file=sys.stderr)
        return 2


def config(settings, assignments: list[str]) -> int:
    if assignments:
        settings = with_changes(settings, assignments)
        print(f"saved in {save_settings(settings)}")
    else:
        print(f"# {settings_path()}")
    print(json.dumps(asdict(settings), indent=2))
    return 0


def echo(settings, args) -> int:
    from app.pacs.dimse import describe_peer, echo as c_echo

    c_echo(settings)
    print(f"C-ECHO: {describe_peer(settings)} answered")
    if settings.dicomweb_url:
        from app.pacs.web import ping

        ping(settings)
        print(f"QIDO-RS: {settings.dicomweb_url} answered")
    return 0


def find(settings, args) -> int:
    from app.pacs.query import StudyQuery, find_studies

    query = StudyQuery(args.name, args.id, args.date_from, args.date_to, args.modality, args.accession)
    matches = find_studies(settings, query, web=args.web or settings.prefer_dicomweb)
    if args.json:
        print(json.dumps([asdict(m) for m in matches], indent=1))
        return 0
    for m in matches:
        count = "?" if m.instances is None else m.instances
        print(f"{m.study_date:8s}  {printable(m.patient_name)[:28]:28s} {printable(m.patient_id)[:14]:14s} "
              f"{m.modalities:8s} {count:>5} img  {printable(m.accession)[:12]:12s} "
              f"{printable(m.description)[:30]:30s} {m.study_uid}")
    print(f"{len(matches)} stud{'y' if len(matches) == 1 else 'ies'}", file=sys.stderr)
    return 0


def get(settings, args) -> int:
    from app.pacs.retrieve import retrieve_study

    def progress(done: int, total: int) -> None:
        print(f"\rretrieving: {done}/{total} instance(s)", end="", file=sys.stderr, flush=True)

    if args.move:
        settings = replace(settings, retrieve_by_move=True)
    report = retrieve_study(settings, args.study_uid, web=args.web or settings.prefer_dicomweb, progress=progress)
    print(file=sys.stderr)
    print(report.summary())
    return 0 if report.complete else 1


def send(settings, args) -> int:
    from app.pacs.send import send_files

    missing = [p for p in args.files if not p.is_file()]
    if missing:
        print("radlens pacs send: no such file: " + ", ".join(printable(str(p)) for p in missing), file=sys.stderr)
        return 2
    failed = send_files(settings, list(args.files), web=args.web or settings.prefer_dicomweb)
    for path, reason in failed:
        print(f"not sent {printable(path)}: {reason}", file=sys.stderr)
    print(f"{len(args.files) - len(failed)} of {len(args.files)} file(s) sent")
    return 0 if not failed else 1


def serve(settings, args) -> int:
    from app.pacs.retrieve import cache_for
    from app.pacs.scp import StorageServer

    server = StorageServer(settings, cache_for(settings),
                           on_received=lambda study, _: print(f"received an instance of study {study}", flush=True))
    server.start()
    host, port = server.address
    print(f"storage SCP {settings.calling_ae} listening on {host}:{port}; accepting "
          f"{', '.join(settings.scp_allowed_aes)}; files go to {settings.cache_folder}", flush=True)
    try:
        deadline = None if args.seconds is None else time.monotonic() + args.seconds
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    print(f"{server.received} instance(s) received")
    return 0


def list_cache(settings, args) -> int:
    from app.pacs.retrieve import cache_for

    studies = cache_for(settings).studies()
    for study in studies:
        state = "complete" if not study.missing else f"partial, {study.missing} missing: {study.reason}"
        print(f"{study.uid}  {study.files} file(s)  {study.size / 1e6:.1f} MB  {state}  ({study.folder})")
    print(f"{len(studies)} stud{'y' if len(studies) == 1 else 'ies'} in {settings.cache_folder}", file=sys.stderr)
    return 0


COMMANDS = {"echo": echo, "find": find, "get": get, "send": send, "serve": serve, "list": list_cache}
