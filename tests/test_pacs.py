"""Query, retrieve, send and receive against a real Orthanc PACS (started per test; no mock)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from app.pacs.dimse import PacsError, echo
from app.pacs.query import StudyQuery, find_studies
from app.pacs.retrieve import retrieve_study
from app.pacs.settings import PacsSettings, PacsSettingsError, load_settings, save_settings, with_changes
from tests.dicom_factory import mg_study
from tests.orthanc import free_port

ROOT = Path(__file__).resolve().parents[1]
PHI = dict(PatientName="ZZTESTONE^ALICE", PatientID="PID-7741", PatientBirthDate="19610203",
           AccessionNumber="ACC99812", StudyDate="20240315")


def settings_for(orthanc, tmp_path: Path, **changes) -> PacsSettings:
    values = dict(host="127.0.0.1", port=orthanc.dicom_port, called_ae=orthanc.aet, calling_ae="RADLENS",
                  dicomweb_url=orthanc.dicomweb_url, cache_dir=str(tmp_path / "cache"), timeout_s=10.0,
                  scp_port=orthanc.modalities["RADLENS"][1])
    values.update(changes)
    return PacsSettings(**values)


def study_in_pacs(orthanc, tmp_path: Path, views=("R CC", "L CC", "R MLO", "L MLO"), **attributes) -> list[Path]:
    paths = mg_study(tmp_path / "source", views=views, **{**PHI, **attributes})
    orthanc.upload(*paths)
    return paths


def run_cli(*args: str, settings_file: Path, log_dir: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "RADLENS_PACS_SETTINGS": str(settings_file)}
    if log_dir:
        env["RADLENS_LOG_DIR"] = str(log_dir)
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_settings_are_checked_and_kept_per_user(tmp_path):
    path = tmp_path / "pacs.json"
    assert load_settings(path) == PacsSettings()  # nothing saved: the defaults
    changed = with_changes(PacsSettings(), ["port=104", "called_ae=PACS1", "scp_allowed_aes=PACS1,MODALITY"])
    save_settings(changed, path)
    assert load_settings(path) == changed and changed.scp_allowed_aes == ["PACS1", "MODALITY"]
    for bad in (["port=70000"], ["called_ae=MUCH_TOO_LONG_AE_TITLE"], ["calling_ae=A\\B"], ["colour=red"],
                ["tls=true"], ["dicomweb_url=ftp://x"]):
        with pytest.raises(PacsSettingsError):
            with_changes(PacsSettings(), bad)
    path.write_text("{not json")
    with pytest.raises(PacsSettingsError, match="cannot read"):
        load_settings(path)


def test_nothing_listens_beyond_loopback_by_default(tmp_path):
    import psutil

    from app.pacs.retrieve import cache_for
    from app.pacs.scp import StorageServer

    settings = PacsSettings(scp_port=free_port(), cache_dir=str(tmp_path))  # every other value the default
    before = {c.laddr for c in psutil.Process().net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    server = StorageServer(settings, cache_for(settings)).start()
    try:
        listening = {c.laddr for c in psutil.Process().net_connections("tcp") if c.status == psutil.CONN_LISTEN}
        assert [addr.ip for addr in listening - before] == ["127.0.0.1"]
    finally:
        server.stop()


def test_stopping_the_storage_scp_ends_an_association_a_peer_keeps_open(tmp_path):
    """A peer that holds an idle association (Orthanc does, for reuse) kept `radlens pacs serve` and the app
    alive after Ctrl+C or quit for `timeout_s`; stop() aborts it after a short grace."""
    import threading
    import time

    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    from app.pacs.retrieve import cache_for
    from app.pacs.scp import STOP_GRACE_S, StorageServer

    settings = PacsSettings(scp_port=free_port(), cache_dir=str(tmp_path), scp_allowed_aes=["HOLDER"], timeout_s=60)
    server = StorageServer(settings, cache_for(settings)).start()
    peer = AE(ae_title="HOLDER")
    peer.add_requested_context(Verification)
    association = peer.associate("127.0.0.1", server.address[1], ae_title=settings.calling_ae)
    try:
        assert association.is_established and association.send_c_echo().Status == 0
        started = time.monotonic()
        server.stop()
        keeping_alive = [t for t in threading.enumerate() if not t.daemon and t is not threading.main_thread()]
        for thread in keeping_alive:
            thread.join(timeout=10)
        assert not [t.name for t in keeping_alive if t.is_alive()]  # the process could exit now
        assert time.monotonic() - started < STOP_GRACE_S + 10 < settings.timeout_s
        association_ended = time.monotonic() + 10
        while not association.is_aborted and time.monotonic() < association_ended:
            time.sleep(0.05)
        assert association.is_aborted
    finally:
        association.abort()


def test_echo_find_and_get_a_mammography_study(orthanc, tmp_path):
    sources = study_in_pacs(orthanc, tmp_path)
    other = mg_study(tmp_path / "other", views=("R CC",), PatientName="ZZOTHER^BOB", PatientID="PID-1",
                     StudyDate="20190101", AccessionNumber="ACC1")
    orthanc.upload(*other)
    settings = settings_for(orthanc, tmp_path)
    echo(settings)
    study_uid = str(pydicom.dcmread(sources[0]).StudyInstanceUID)

    def uids(query: StudyQuery, web=False) -> list[str]:
        return [m.study_uid for m in find_studies(settings, query, web=web)]

    assert uids(StudyQuery(patient_name="ZZTESTONE*")) == [study_uid]
    assert uids(StudyQuery(patient_name="zztestone^alice")) == [study_uid]
    # Debian's Orthanc 1.10 DICOMweb plugin does not decode percent-escapes in QIDO values, so names with
    # * or ^ (which dicomweb-client escapes) match nothing over QIDO there; other keys are checked both ways.
    for web in (False, True):
        assert uids(StudyQuery(patient_id="PID-7741"), web) == [study_uid]
        assert uids(StudyQuery(accession="ACC99812"), web) == [study_uid]
        assert uids(StudyQuery(date_from="2024-01-01", date_to="20241231", modality="MG"), web) == [study_uid]
        assert uids(StudyQuery(date_to="20200101"), web) == [str(pydicom.dcmread(other[0]).StudyInstanceUID)]
        assert uids(StudyQuery(patient_id="nobody"), web) == []
    match = find_studies(settings, StudyQuery(patient_id="PID-7741"))[0]
    assert (match.patient_name, match.study_date, match.modalities, match.instances) == \
           ("ZZTESTONE^ALICE", "20240315", "MG", 4)

    seen = []
    report = retrieve_study(settings, study_uid, progress=lambda done, total: seen.append((done, total)))
    assert report.complete and report.fetched == 4 and report.already == 0, report.summary()
    assert seen[0] == (0, 4) and seen[-1] == (4, 4)
    for source in sources:
        original = pydicom.dcmread(source)
        copy = pydicom.dcmread(report.folder / f"{original.SOPInstanceUID}.dcm")
        assert copy.SOPClassUID == original.SOPClassUID and copy.PatientID == "PID-7741"
        assert np.array_equal(copy.pixel_array, original.pixel_array)
    again = retrieve_study(settings, study_uid)
    assert again.complete and (again.fetched, again.already) == (0, 4)  # nothing fetched twice


def test_c_move_to_our_own_storage_scp_retrieves_and_resumes(orthanc, tmp_path):
    sources = study_in_pacs(orthanc, tmp_path)
    settings = settings_for(orthanc, tmp_path, retrieve_by_move=True)  # Orthanc knows RADLENS at scp_port
    study_uid = str(pydicom.dcmread(sources[0]).StudyInstanceUID)
    seen = []
    stopped = retrieve_study(settings, study_uid, progress=lambda done, total: seen.append(done),
                             cancelled=lambda: seen[-1] >= 1)
    assert stopped.problem == "cancelled" and stopped.fetched == 1 and len(stopped.missing) == 3
    resumed = retrieve_study(settings, study_uid)
    assert resumed.complete and (resumed.already, resumed.fetched) == (1, 3), resumed.summary()
    for source in sources:
        original = pydicom.dcmread(source)
        copy = pydicom.dcmread(resumed.folder / f"{original.SOPInstanceUID}.dcm")
        assert np.array_equal(copy.pixel_array, original.pixel_array)
    elsewhere = settings_for(orthanc, tmp_path / "b", retrieve_by_move=True, scp_port=free_port())
    lost = retrieve_study(elsewhere, study_uid)  # Orthanc sends to where it knows RADLENS: nobody listens there
    assert not lost.complete and len(lost.missing) == 4, lost.summary()
    assert "did not send them to our storage SCP" in lost.problem


def test_get_over_dicomweb(orthanc, tmp_path):
    sources = study_in_pacs(orthanc, tmp_path, views=("R CC", "L CC"))
    settings = settings_for(orthanc, tmp_path)
    study_uid = str(pydicom.dcmread(sources[0]).StudyInstanceUID)
    report = retrieve_study(settings, study_uid, web=True)
    assert report.complete and report.fetched == 2, report.summary()
    for source in sources:
        original = pydicom.dcmread(source)
        copy = pydicom.dcmread(report.folder / f"{original.SOPInstanceUID}.dcm")
        assert np.array_equal(copy.pixel_array, original.pixel_array)


def test_a_pacs_that_is_down_or_refuses_gives_a_clear_message(orthanc, tmp_path):
    closed = settings_for(orthanc, tmp_path, port=free_port(), dicomweb_url=f"http://127.0.0.1:{free_port()}/dw")
    with pytest.raises(PacsError, match="no answer from the PACS"):
        echo(closed)
    from app.pacs.web import ping

    with pytest.raises(PacsError, match="no answer from the DICOMweb server"):
        ping(closed)
    report = retrieve_study(closed, "1.2.3.4")
    assert not report.complete and "cannot list" in report.problem and "no answer" in report.problem
    with pytest.raises(PacsError, match="refused the association"):
        echo(settings_for(orthanc, tmp_path, called_ae="NOT_ORTHANC"))
    with pytest.raises(PacsError):  # an AE title the PACS does not know may not search
        find_studies(settings_for(orthanc, tmp_path, calling_ae="STRANGER"), StudyQuery(patient_id="x"))


def test_a_transfer_cut_off_midway_leaves_a_partial_study_and_a_retry_resumes(orthanc, tmp_path):
    views = ("R CC", "L CC", "R MLO", "L MLO", "R ML", "L ML")
    sources = study_in_pacs(orthanc, tmp_path, views=views, size=(256, 192))
    study_uid = str(pydicom.dcmread(sources[0]).StudyInstanceUID)
    settings = settings_for(orthanc, tmp_path)

    def pull_the_plug(done: int, total: int) -> None:
        if done == 2:
            orthanc.kill()

    cut = retrieve_study(settings, study_uid, progress=pull_the_plug)
    assert not cut.complete and cut.total == 6
    assert cut.fetched == 2 and len(cut.missing) == 4, cut.summary()
    assert "dropped" in cut.problem or "no answer" in cut.problem
    assert "partial study: 2 of 6" in cut.summary() and "resume" in cut.summary()
    note = json.loads((cut.folder / ".radlens-missing.json").read_text())
    assert sorted(note["missing_instances"]) == sorted(cut.missing)
    kept = {p.name: p.stat().st_mtime_ns for p in cut.folder.glob("*.dcm")}
    assert len(kept) == 2 and not list(cut.folder.glob(".*.part"))
    from app.io.study_loader import scan

    opened = scan([cut.folder])  # the partial study opens like a folder: two images, no problems
    assert opened.problems == [] and sum(len(study.images) for study in opened.studies) == 2

    down = retrieve_study(settings, study_uid)  # the PACS is still down: the cache says what is missing
    assert not down.complete and sorted(down.missing) == sorted(cut.missing) and down.already == 2

    orthanc.start()  # same storage: the PACS is back
    resumed = retrieve_study(settings, study_uid)
    assert resumed.complete and (resumed.already, resumed.fetched) == (2, 4), resumed.summary()
    assert all(resumed.folder.joinpath(name).stat().st_mtime_ns == t for name, t in kept.items())  # not refetched
    assert not (resumed.folder / ".radlens-missing.json").exists()


def test_the_cache_size_limit_stops_with_a_message_and_evicts_old_complete_studies(orthanc, tmp_path):
    first = study_in_pacs(orthanc, tmp_path / "a", views=("R CC", "L CC"), size=(400, 400))  # 0.32 MB each
    second = study_in_pacs(orthanc, tmp_path / "b", views=("R CC", "L CC"), size=(400, 400))
    settings = settings_for(orthanc, tmp_path, cache_limit_mb=1)
    a = retrieve_study(settings, str(pydicom.dcmread(first[0]).StudyInstanceUID))
    assert a.complete
    b = retrieve_study(settings, str(pydicom.dcmread(second[0]).StudyInstanceUID))
    assert b.complete and not a.folder.exists()  # the older complete study made room
    big = study_in_pacs(orthanc, tmp_path / "c", views=("R CC", "L CC", "R MLO", "L MLO"), size=(400, 400))
    c = retrieve_study(settings, str(pydicom.dcmread(big[0]).StudyInstanceUID))
    assert not c.complete and "full" in c.problem and len(c.missing) == 1


def test_send_by_c_store_and_stow(orthanc, tmp_path):
    from app.pacs.send import send_files

    settings = settings_for(orthanc, tmp_path)
    dimse_files = mg_study(tmp_path / "dimse", views=("R CC", "L CC"))
    web_files = mg_study(tmp_path / "web", views=("R MLO",))
    junk = tmp_path / "notes.txt"
    junk.write_text("not DICOM")
    failed = send_files(settings, [*dimse_files, junk])
    assert failed == [(str(junk), failed[0][1])] and "not a DICOM file" in failed[0][1]
    assert send_files(settings, web_files, web=True) == []
    expected = {str(pydicom.dcmread(p).SOPInstanceUID) for p in [*dimse_files, *web_files]}
    assert orthanc.instance_uids() == expected


@pytest.mark.parametrize("web", [False, True], ids=["c-store", "stow-rs"])
def test_a_file_the_pacs_refuses_is_named_and_the_others_are_stored(orthanc, tmp_path, web):
    from app.pacs.send import send_files

    settings = settings_for(orthanc, tmp_path)
    kept = mg_study(tmp_path / "kept", views=("R CC", "L CC"))
    (refused,) = mg_study(tmp_path / "refused", views=("R MLO",))
    ds = pydicom.dcmread(refused)
    del ds.SeriesInstanceUID  # a PACS cannot file it (Orthanc refuses it over DIMSE and DICOMweb alike)
    ds.save_as(refused)
    failed = send_files(settings, [kept[0], refused, kept[1]], web=web)
    assert [path for path, _ in failed] == [str(refused)], failed
    assert orthanc.instance_uids() == {str(pydicom.dcmread(p).SOPInstanceUID) for p in kept}


def test_a_stow_answer_names_what_failed_and_what_it_did_not_confirm():
    from pydicom.dataset import Dataset

    from app.pacs.web import stow_failures

    def item(uid: str, reason: int | None = None) -> Dataset:
        ds = Dataset()
        ds.ReferencedSOPInstanceUID = uid
        if reason is not None:
            ds.FailureReason = reason
        return ds

    answer = Dataset()
    answer.ReferencedSOPSequence = [item("1.1")]
    answer.FailedSOPSequence = [item("1.2", 0xA700)]
    assert stow_failures(answer, ["1.1", "1.2", "1.3"]) == [
        ("1.2", "the server refused it: out of resources"), ("1.3", "the server did not confirm that it stored it")]
    assert stow_failures(Dataset(), ["1.1"]) == []  # 200 without a body: all stored
    assert stow_failures(Dataset(), ["1.1"], complete=True) == [("1.1", "the server did not confirm that it stored it")]


def test_storage_scp_accepts_only_configured_ae_titles(orthanc, tmp_path):
    from app.pacs.retrieve import cache_for
    from app.pacs.scp import StorageServer
    from app.pacs.send import send_files

    sources = study_in_pacs(orthanc, tmp_path, views=("R CC", "L CC"))
    settings = settings_for(orthanc, tmp_path, scp_allowed_aes=["ORTHANC"])
    server = StorageServer(settings, cache_for(settings)).start()
    try:
        assert server.address[0] == "127.0.0.1"
        study_id = orthanc.get("/studies")[0]
        import urllib.request

        request = urllib.request.Request(f"{orthanc.url}/modalities/radlens/store", data=study_id.encode(),
                                         method="POST")
        urllib.request.urlopen(request, timeout=30).read()  # Orthanc pushes with C-STORE as ORTHANC
        assert server.received == 2
        study_uid = str(pydicom.dcmread(sources[0]).StudyInstanceUID)
        assert len(list(cache_for(settings).study_folder(study_uid).glob("*.dcm"))) == 2

        intruder = PacsSettings(host="127.0.0.1", port=server.address[1], called_ae="RADLENS",
                                calling_ae="INTRUDER", timeout_s=5.0)
        with pytest.raises(PacsError, match="refused the association"):
            send_files(intruder, mg_study(tmp_path / "intruder", views=("R CC",)))
        assert server.received == 2
    finally:
        server.stop()


def test_cli_find_get_and_list_without_phi_in_the_log(orthanc, tmp_path):
    sources = study_in_pacs(orthanc, tmp_path, views=("R CC", "L CC"))
    settings_file = save_settings(settings_for(orthanc, tmp_path), tmp_path / "pacs.json")
    log_dir = tmp_path / "log"
    study_uid = str(pydicom.dcmread(sources[0]).StudyInstanceUID)

    found = run_cli("pacs", "find", "--id", "PID-7741", "--json", settings_file=settings_file, log_dir=log_dir)
    assert found.returncode == 0, found.stderr
    assert [m["study_uid"] for m in json.loads(found.stdout)] == [study_uid]
    got = run_cli("pacs", "get", study_uid, settings_file=settings_file, log_dir=log_dir)
    assert got.returncode == 0 and "study complete: 2 instance(s)" in got.stdout, got.stdout + got.stderr
    assert "2/2" in got.stderr
    listed = run_cli("pacs", "list", settings_file=settings_file, log_dir=log_dir)
    assert "2 file(s)" in listed.stdout and "complete" in listed.stdout
    echoed = run_cli("pacs", "echo", settings_file=settings_file, log_dir=log_dir)
    assert echoed.returncode == 0 and "C-ECHO" in echoed.stdout and "QIDO-RS" in echoed.stdout

    orthanc.stop()
    down = run_cli("pacs", "find", "--id", "PID-7741", settings_file=settings_file, log_dir=log_dir)
    assert down.returncode == 2 and "no answer from the PACS" in down.stderr and "Traceback" not in down.stderr

    log = (log_dir / "radlens.log").read_text()
    assert "Retrieve of study" in log  # the log was written, so the check below can fail
    phi = [*PHI.values(), "ZZTESTONE", study_uid, *(str(pydicom.dcmread(p).SOPInstanceUID) for p in sources)]
    assert [value for value in phi if value in log] == []


def test_no_phi_in_log_records_of_any_pacs_operation(orthanc, tmp_path, caplog):
    import logging

    from app.pacs.send import send_files

    caplog.set_level(logging.DEBUG)
    sources = study_in_pacs(orthanc, tmp_path, views=("R CC",))
    settings = settings_for(orthanc, tmp_path)
    study_uid = str(pydicom.dcmread(sources[0]).StudyInstanceUID)
    find_studies(settings, StudyQuery(patient_name="ZZTESTONE^ALICE"))
    find_studies(settings, StudyQuery(patient_id="PID-7741"), web=True)
    retrieve_study(settings, study_uid)
    send_files(settings, mg_study(tmp_path / "sent", views=("L CC",), **PHI))
    orthanc.stop()
    retrieve_study(settings, study_uid)  # a failure is logged too
    assert "C-FIND" in caplog.text and "Retrieve of study" in caplog.text
    phi = [*PHI.values(), "ZZTESTONE", study_uid, str(pydicom.dcmread(sources[0]).SOPInstanceUID)]
    assert [value for value in phi if value in caplog.text] == []


def test_dicom_tls_between_our_client_and_our_scp(tmp_path):
    import shutil

    from app.pacs.retrieve import cache_for
    from app.pacs.scp import StorageServer
    from app.pacs.send import send_files

    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    port = free_port()
    tls = dict(tls=True, tls_ca_file=str(cert), tls_cert_file=str(cert), tls_key_file=str(key), timeout_s=5.0)
    server_settings = PacsSettings(scp_port=port, scp_allowed_aes=["SENDER"], cache_dir=str(tmp_path / "in"), **tls)
    server = StorageServer(server_settings, cache_for(server_settings)).start()
    try:
        client = PacsSettings(host="127.0.0.1", port=port, called_ae="RADLENS", calling_ae="SENDER", **tls)
        assert send_files(client, mg_study(tmp_path / "tls", views=("R CC",))) == []
        assert server.received == 1
        plain = PacsSettings(host="127.0.0.1", port=port, called_ae="RADLENS", calling_ae="SENDER", timeout_s=5.0)
        with pytest.raises(PacsError, match="no answer|TLS"):
            send_files(plain, mg_study(tmp_path / "plain", views=("R CC",)))
        assert server.received == 1
    finally:
        server.stop()


def test_cli_config_send_and_serve(orthanc, tmp_path):
    import signal
    import urllib.request

    settings_file = tmp_path / "pacs.json"
    configured = run_cli("pacs", "config", f"port={orthanc.dicom_port}", f"cache_dir={tmp_path / 'cache'}",
                         f"scp_port={orthanc.modalities['RADLENS'][1]}", "timeout_s=10", settings_file=settings_file)
    assert configured.returncode == 0 and load_settings(settings_file).port == orthanc.dicom_port
    bad = run_cli("pacs", "config", "port=http", settings_file=settings_file)
    assert bad.returncode == 2 and "port" in bad.stderr and "Traceback" not in bad.stderr

    files = mg_study(tmp_path / "send", views=("R CC", "L CC"), **PHI)
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"DICM? no")
    sent = run_cli("pacs", "send", *map(str, files), str(junk), settings_file=settings_file)
    assert sent.returncode == 1 and "2 of 3 file(s) sent" in sent.stdout and "not sent" in sent.stderr
    assert len(orthanc.instance_uids()) == 2

    serve = subprocess.Popen([sys.executable, "-m", "app", "pacs", "serve"], cwd=ROOT, text=True,
                             env={**os.environ, "RADLENS_PACS_SETTINGS": str(settings_file)},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = serve.stdout.readline()
        assert "listening on 127.0.0.1:" in first, first + serve.stderr.read()
        request = urllib.request.Request(f"{orthanc.url}/modalities/radlens/store",
                                         data=orthanc.get("/studies")[0].encode(), method="POST")
        urllib.request.urlopen(request, timeout=30).read()
    finally:
        serve.send_signal(signal.SIGINT)
        out, err = serve.communicate(timeout=30)
    assert "2 instance(s) received" in out, out + err
    listed = run_cli("pacs", "list", settings_file=settings_file)
    assert "2 file(s)" in listed.stdout and "complete" in listed.stdout


def test_a_cancelled_retrieval_keeps_what_arrived_and_resumes(orthanc, tmp_path):
    sources = study_in_pacs(orthanc, tmp_path)
    study_uid = str(pydicom.dcmread(sources[0]).StudyInstanceUID)
    settings = settings_for(orthanc, tmp_path)
    seen = []
    stopped = retrieve_study(settings, study_uid, progress=lambda done, total: seen.append(done),
                             cancelled=lambda: seen[-1] >= 1)
    assert stopped.problem == "cancelled" and stopped.fetched == 1 and len(stopped.missing) == 3
    resumed = retrieve_study(settings, study_uid)
    assert resumed.complete and (resumed.already, resumed.fetched) == (1, 3)


def test_a_pacs_that_accepts_the_connection_but_never_answers_times_out(tmp_path):
    import socket
    import time

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        settings = PacsSettings(port=silent.getsockname()[1], timeout_s=1.0, cache_dir=str(tmp_path))
        start = time.monotonic()
        with pytest.raises(PacsError, match="no answer from the PACS"):
            echo(settings)
        assert time.monotonic() - start < 10


def test_with_pynetdicom_loaded_a_newer_transfer_syntax_still_names_the_remedy(tmp_path):
    """pynetdicom registers newer transfer syntaxes with pydicom when imported; the reader's message for
    one it cannot decode must not lose its remedy then (in a fresh process: the order of imports matters)."""
    code = ("import sys; from pathlib import Path; import pynetdicom; "
            "from tests.dicom_conformance import deflated_image_frame_file; "
            "from app.io.study_loader import decode_image, read_info; from app.io.errors import StudyLoadError\n"
            "path = deflated_image_frame_file(Path(sys.argv[1]))\n"
            "try:\n    decode_image(read_info(path))\nexcept StudyLoadError as error:\n    print(error.reason)")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "deflated.dcm")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert "1.2.840.10008.1.2.8.1" in run.stdout and "dcmconv" in run.stdout, run.stdout + run.stderr


def test_tls_settings_that_cannot_work_say_why(tmp_path):
    from app.pacs.security import client_tls, server_tls

    missing = PacsSettings(tls=True, tls_ca_file=str(tmp_path / "nope.pem"))
    with pytest.raises(PacsSettingsError, match="cannot load the certificates"):
        client_tls(missing)
    with pytest.raises(PacsSettingsError, match="needs tls_cert_file and tls_key_file"):
        server_tls(missing)
    assert client_tls(PacsSettings()) is None and server_tls(PacsSettings()) is None


def test_the_newest_prior_of_a_mammogram_is_found_and_fetched_from_the_pacs(orthanc, tmp_path):
    from app.io.study_loader import scan
    from app.pacs.priors import fetch_newest_prior, prior_matches

    settings = settings_for(orthanc, tmp_path)
    current = mg_study(tmp_path / "current", PatientID="PRI-1", StudyDate="20240510")
    for folder, date in (("prior", "20220302"), ("older", "20200101"), ("later", "20250101")):
        orthanc.upload(*mg_study(tmp_path / folder, PatientID="PRI-1", StudyDate=date))
    orthanc.upload(*mg_study(tmp_path / "other", PatientID="PRI-2", StudyDate="20230101"))
    orthanc.upload(*current)  # the current study on the PACS too: never its own prior
    (study,) = scan([tmp_path / "current"]).studies
    assert [m.study_date for m in prior_matches(settings, study)] == ["20220302", "20200101"]
    fetched = fetch_newest_prior(settings, study)
    assert fetched.match.study_date == "20220302" and fetched.report.complete
    (prior,) = scan([fetched.report.folder]).studies
    assert prior.date == "2022-03-02" and prior.patient_id == "PRI-1" and len(prior.images) == 4
    assert fetch_newest_prior(settings, study).report.fetched == 0  # in the cache already: nothing again


def test_p_fetches_the_prior_from_the_pacs_when_none_is_open(orthanc, tmp_path, qtbot, main_window, monkeypatch):
    from tests.test_ui import open_and_wait

    settings_file = tmp_path / "pacs.json"
    save_settings(settings_for(orthanc, tmp_path), settings_file)
    monkeypatch.setenv("RADLENS_PACS_SETTINGS", str(settings_file))
    current = mg_study(tmp_path / "current", PatientID="PRI-3", StudyDate="20240510")
    orthanc.upload(*mg_study(tmp_path / "prior", PatientID="PRI-3", StudyDate="20220302"))
    main_window.resize(1800, 1000)
    open_and_wait(qtbot, main_window, [current[0].parent])
    main_window.actions["compare_prior"].trigger()
    qtbot.waitUntil(lambda: len(main_window.session.on_screen) == 2, timeout=60000)
    qtbot.waitUntil(lambda: main_window.session.is_fully_painted and not main_window.loader.busy, timeout=20000)
    assert sum("prior 2022-03-02" in v.label for v in main_window.study_view.viewports) == 4
    prior = main_window.session.on_screen[1]
    assert all((tmp_path / "cache") in info.path.parents for info in prior.images)  # fetched into the cache
    assert len(main_window.session.studies) == 2 and main_window.study_list.count() == 2
