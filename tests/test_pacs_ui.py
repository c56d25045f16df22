"""The PACS in the window and in `radlens predict --send`, against a real Orthanc (started per test; no mock):
the panel searches, retrieves into the window, resumes a partial study, receives pushed studies and says
clearly when the PACS is down; Send results to PACS stores an SR, a SEG and a secondary capture."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from PySide6 import QtCore, QtWidgets

from app.pacs.settings import load_settings, save_settings
from tests.dicom_factory import mg_study, write_dicom
from tests.model_factory import make_package
from tests.test_pacs import PHI, settings_for, study_in_pacs

ROOT = Path(__file__).resolve().parents[1]
SR_CLASS, SEG_CLASS = pydicom.uid.Comprehensive3DSRStorage, pydicom.uid.SegmentationStorage
SC_CLASS = pydicom.uid.SecondaryCaptureImageStorage


@pytest.fixture
def pacs_file(orthanc, tmp_path, monkeypatch) -> Path:
    """The user's PACS settings point at the test's Orthanc."""
    path = save_settings(settings_for(orthanc, tmp_path), tmp_path / "pacs.json")
    monkeypatch.setenv("RADLENS_PACS_SETTINGS", str(path))
    return path


@pytest.fixture
def panel(qtbot, main_window, pacs_file):
    main_window.actions["pacs"].trigger()
    panel = main_window.pacs_panel
    assert panel is not None and panel.isVisible()
    yield panel
    qtbot.waitUntil(lambda: not panel.busy, timeout=30000)
    panel.shut_down()


def wait_idle(qtbot, panel) -> None:
    qtbot.waitUntil(lambda: not panel.busy, timeout=30000)


def no_dialogs() -> bool:
    return not [w for w in QtWidgets.QApplication.topLevelWidgets()
                if isinstance(w, QtWidgets.QDialog) and w.isVisible()]


def table_rows(panel) -> list[list[str]]:
    proxy = panel.proxy
    return [[proxy.index(row, column).data() for column in range(proxy.columnCount())]
            for row in range(proxy.rowCount())]


def search(qtbot, panel, **fields) -> None:
    for name, value in fields.items():
        getattr(panel, f"{name}_edit").setText(value)
    panel.search_button.click()
    wait_idle(qtbot, panel)


def test_the_panel_finds_sorts_and_retrieves_a_study_into_the_window(qtbot, main_window, panel, orthanc, tmp_path):
    sources = study_in_pacs(orthanc, tmp_path)
    older = mg_study(tmp_path / "older", views=("R CC",), PatientName="ZZTESTONE^ALICE", PatientID="PID-7741",
                     StudyDate="20190101", AccessionNumber="ACC1")
    orthanc.upload(*older)
    search(qtbot, panel, name="zztestone")  # the beginning of the name, any case
    rows = table_rows(panel)
    assert [row[0] for row in rows] == ["2024-03-15", "2019-01-01"]  # newest first
    assert rows[0][1:6] == ["ZZTESTONE ALICE", "PID-7741", "MG", "4", "ACC99812"]
    panel.table.sortByColumn(4, QtCore.Qt.SortOrder.AscendingOrder)  # by image count
    assert [row[4] for row in table_rows(panel)] == ["1", "4"]
    search(qtbot, panel, name="", accession="ACC99812")
    assert len(table_rows(panel)) == 1 and "1 study found" in panel.message.text()

    panel.retrieve_button.click()
    wait_idle(qtbot, panel)
    assert "Retrieved 4 image(s)" in panel.message.text(), panel.message.text()
    qtbot.waitUntil(lambda: main_window.session.shown is not None and main_window.session.is_fully_painted,
                    timeout=30000)
    shown = main_window.session.shown
    assert {str(info.sop_uid) for info in shown.images} == \
           {str(pydicom.dcmread(p).SOPInstanceUID) for p in sources}
    assert table_rows(panel)[0][7] == "complete, 4 image(s)"
    main_window.grab().save(str(tmp_path / "pacs-panel.png"))
    assert no_dialogs()


def test_a_partial_study_says_what_is_missing_and_retrieve_again_resumes(qtbot, main_window, panel, orthanc,
                                                                          tmp_path):
    from app.pacs.retrieve import retrieve_study

    views = ("R CC", "L CC", "R MLO", "L MLO", "R ML", "L ML")
    sources = study_in_pacs(orthanc, tmp_path, views=views)
    settings = load_settings()

    def pull_the_plug(done: int, total: int) -> None:
        if done == 2:
            orthanc.kill()

    assert len(retrieve_study(settings, str(pydicom.dcmread(sources[0]).StudyInstanceUID),
                              progress=pull_the_plug).missing) == 4
    search(qtbot, panel, id="PID-7741")  # the PACS is down
    assert "Search failed" in panel.message.text() and "no answer from the PACS" in panel.message.text()
    orthanc.start()
    search(qtbot, panel, id="PID-7741")
    assert table_rows(panel)[0][7] == "partial: 2 here, 4 missing"
    assert panel.retrieve_button.text() == "Retrieve again (resume)"
    orthanc.kill()
    panel.retrieve_button.click()
    wait_idle(qtbot, panel)
    text = panel.message.text()
    assert "Partial study: 2 of ? image(s)" in text and "4 missing" in text and "no answer" in text, text
    assert "Retrieve again to resume" in text and main_window.session.shown is None

    orthanc.start()
    panel.retrieve_button.click()
    wait_idle(qtbot, panel)
    assert "Retrieved 4 image(s) (2 already in the cache)" in panel.message.text(), panel.message.text()
    qtbot.waitUntil(lambda: main_window.session.shown is not None and main_window.session.is_fully_painted,
                    timeout=30000)
    assert len(main_window.session.shown.images) == 6 and no_dialogs()


def test_a_pacs_that_is_down_is_a_clear_message_in_the_panel(qtbot, main_window, panel, orthanc):
    panel.tabs.setCurrentWidget(panel.settings_form)
    panel.settings_form.test_button.click()
    wait_idle(qtbot, panel)
    assert panel.message.text() == (f"C-ECHO: ORTHANC@127.0.0.1:{orthanc.dicom_port} answered; "
                                    f"QIDO-RS: {orthanc.dicomweb_url} answered")
    orthanc.stop()
    panel.settings_form.test_button.click()
    wait_idle(qtbot, panel)
    assert panel.message.text().startswith("Connection failed: no answer from the PACS")
    search(qtbot, panel, id="PID-7741")
    assert "Search failed: no answer from the PACS" in panel.message.text()
    assert main_window.isVisible() and no_dialogs()
    assert "d9534f" in panel.message.styleSheet()  # shown as an error


def test_unreadable_settings_are_said_in_the_panel(qtbot, main_window, tmp_path, monkeypatch):
    broken = tmp_path / "pacs.json"
    broken.write_text("{not json")
    monkeypatch.setenv("RADLENS_PACS_SETTINGS", str(broken))
    main_window.actions["pacs"].trigger()
    qtbot.waitUntil(lambda: "the defaults are shown" in main_window.pacs_panel.message.text(), timeout=5000)
    assert "cannot read the PACS settings" in main_window.pacs_panel.message.text() and no_dialogs()


def test_the_connection_form_is_checked_and_saved_per_user(qtbot, panel, pacs_file, orthanc):
    form = panel.settings_form
    form.called_edit.setText("MUCH_TOO_LONG_AE_TITLE")
    form.save_button.click()
    assert "Not saved: called_ae" in panel.message.text()
    form.called_edit.setText("ORTHANC")
    form.web_edit.setText("")
    form.prefer_web_box.setChecked(True)
    form.save_button.click()
    assert "prefer_dicomweb needs dicomweb_url" in panel.message.text()
    form.web_edit.setText(orthanc.dicomweb_url)
    form.port_box.setValue(orthanc.dicom_port)
    form.allowed_edit.setText("ORTHANC, MODALITY1")
    form.save_button.click()
    assert panel.message.text() == f"Settings saved in {pacs_file}"
    saved = load_settings(pacs_file)
    assert saved.prefer_dicomweb and saved.scp_allowed_aes == ["ORTHANC", "MODALITY1"]
    assert saved.cache_dir == str(pacs_file.parent / "cache")  # fields the form does not show are kept
    search(qtbot, panel, id="nobody")  # over QIDO-RS now
    assert panel.message.text() == "0 studies found"


def test_studies_pushed_to_radlens_are_listed_and_open(qtbot, main_window, panel, orthanc, tmp_path):
    sources = study_in_pacs(orthanc, tmp_path, views=("R CC", "L CC"))
    panel.tabs.setCurrentIndex(1)
    panel.receive_box.setChecked(True)
    assert "Receiving as RADLENS on 127.0.0.1:" in panel.message.text()
    request = urllib.request.Request(f"{orthanc.url}/modalities/radlens/store", data=orthanc.get("/studies")[0]
                                     .encode(), method="POST")
    urllib.request.urlopen(request, timeout=30).read()  # Orthanc pushes the study by C-STORE
    qtbot.waitUntil(lambda: panel.incoming_list.count() == 1 and "2 image(s)" in panel.incoming_list.item(0).text(),
                    timeout=10000)
    assert panel.incoming_list.item(0).text() == "20240315  ZZTESTONE ALICE  MG  2 image(s)"
    panel.open_incoming(panel.incoming_list.item(0))
    qtbot.waitUntil(lambda: main_window.session.shown is not None and main_window.session.is_fully_painted,
                    timeout=30000)
    assert {str(i.sop_uid) for i in main_window.session.shown.images} == \
           {str(pydicom.dcmread(p).SOPInstanceUID) for p in sources}

    later = study_in_pacs(orthanc, tmp_path / "later", views=("R MLO",), PatientID="PID-2")
    panel.settings_form.move_box.setChecked(True)  # C-MOVE: delivered to the SCP the panel runs
    search(qtbot, panel, id="PID-2")
    panel.retrieve_button.click()
    wait_idle(qtbot, panel)
    assert "Retrieved 1 image(s)" in panel.message.text(), panel.message.text()
    qtbot.waitUntil(lambda: main_window.session.shown is not None and
                    [str(i.sop_uid) for i in main_window.session.shown.images] ==
                    [str(pydicom.dcmread(later[0]).SOPInstanceUID)], timeout=30000)
    assert panel.incoming_list.count() == 2  # what C-MOVE delivered arrived at the Incoming SCP too
    panel.receive_box.setChecked(False)
    assert panel._server is None

    from app.ui.pacs_panel import PacsPanel

    opened = []
    restarted = PacsPanel(opened.append)  # the next run of the app: what was received is still listed
    qtbot.addWidget(restarted)
    assert [restarted.incoming_list.item(row).text() for row in range(2)] == \
           [panel.incoming_list.item(row).text() for row in range(2)]
    assert restarted.incoming_list.item(1).text() == "20240315  ZZTESTONE ALICE  MG  2 image(s)"
    restarted.open_incoming(restarted.incoming_list.item(1))
    assert opened == [[Path(panel.incoming_list.item(1).data(QtCore.Qt.ItemDataRole.UserRole))]]
    assert sorted(p.name for p in opened[0][0].glob("*.dcm")) == \
           sorted(f"{pydicom.dcmread(p).SOPInstanceUID}.dcm" for p in sources)


def test_a_cache_that_cannot_be_listed_is_said_and_the_panel_opens(qtbot, pacs_file, monkeypatch):
    from app.pacs.cache import StudyCache
    from app.ui.pacs_panel import PacsPanel

    def unreadable(self):
        raise PermissionError(13, "Permission denied", str(self.folder))

    monkeypatch.setattr(StudyCache, "received", unreadable)  # as root, no folder can be made unreadable
    panel = PacsPanel(lambda paths: None)
    qtbot.addWidget(panel)
    assert panel.incoming_list.count() == 0
    assert panel.message.text().startswith("Cannot list the studies received before: PermissionError")


# ---- sending results -------------------------------------------------------------------------------------
@pytest.fixture
def models(tmp_path, monkeypatch):
    root = tmp_path / "models"
    make_package(root, "toy-us-cls", modality="US", classes=("normal", "benign", "malignant"))
    make_package(root, "toy-ot-seg", task="segmentation", modality="OT")
    make_package(root, "toy-mg-cls", modality="MG", classes=("benign", "malignant"))  # reads R_CC.png
    monkeypatch.setenv("RADLENS_MODEL_PATH", str(root))
    return root


def mixed_study(folder: Path) -> list[Path]:
    """One study: an ultrasound image (read by the classifier) and an OT image (read by the segmenter)."""
    rng = np.random.default_rng(3)
    study = pydicom.uid.generate_uid()
    return [write_dicom(folder / f"{modality}.dcm", rng.integers(0, 255, (96, 128), np.uint8), Modality=modality,
                        StudyInstanceUID=study, SeriesNumber=number, **PHI)
            for number, modality in enumerate(("US", "OT"), start=1)]


def stored(orthanc) -> dict[str, pydicom.Dataset]:
    """Every instance in Orthanc by SOP Class, read back from Orthanc's own REST API."""
    found = {}
    for orthanc_id in orthanc.get("/instances"):
        with urllib.request.urlopen(f"{orthanc.url}/instances/{orthanc_id}/file", timeout=10) as answer:
            ds = pydicom.dcmread(io.BytesIO(answer.read()))
        found.setdefault(str(ds.SOPClassUID), []).append(ds)
    return found


@pytest.mark.parametrize("web", [False, True], ids=["c-store", "stow-rs"])
def test_send_results_stores_the_sr_the_seg_and_the_view_in_the_pacs(qtbot, models, main_window, pacs_file,
                                                                      orthanc, tmp_path, web):
    if web:  # the reader's settings prefer DICOMweb: the same results go by STOW-RS
        save_settings(settings_for(orthanc, tmp_path, prefer_dicomweb=True), pacs_file)
    sources = mixed_study(tmp_path / "study")
    main_window.open_paths([tmp_path / "study"])
    qtbot.waitUntil(lambda: main_window.session.is_fully_painted and not main_window.loader.busy, timeout=30000)
    with qtbot.waitSignal(main_window.ai.run_finished, timeout=120000):
        main_window.actions["run_ai"].trigger()
    session = main_window.session
    assert len(session.results) == 2
    seg_result = next(r for r in session.results.values() if r.mask is not None)
    mask_layer = next(layer for layer in session.layers.for_image(seg_result.image_identity) if layer.kind == "mask")
    mask_layer.threshold = float(np.median(seg_result.mask))  # the reader's threshold is what is sent
    with qtbot.waitSignal(main_window.results_sender.finished, timeout=60000) as sent:
        main_window.ai.send_button.click()
    summary, ok = sent.args
    where = orthanc.dicomweb_url if web else f"ORTHANC@127.0.0.1:{orthanc.dicom_port}"
    assert ok and summary == f"Sent to {where}: 1 DICOM SEG, 1 secondary capture, 1 findings SR", summary
    assert main_window.ai.send_status.text() == summary
    assert [e.kind for e in session.exports] == ["DICOM SEG", "secondary capture", "findings SR"]
    assert all(e.path.is_file() and e.path.is_relative_to(load_settings().sent_folder) for e in session.exports)

    arrived = stored(orthanc)
    source_study = str(pydicom.dcmread(sources[0]).StudyInstanceUID)
    (sr,), (seg,), (sc,) = arrived[SR_CLASS], arrived[SEG_CLASS], arrived[SC_CLASS]
    assert {sr.StudyInstanceUID, seg.StudyInstanceUID, sc.StudyInstanceUID} == {source_study}
    report = hd.sr.Comprehensive3DSR.from_dataset(sr)
    (group,) = report.content.get_image_measurement_groups()
    us = pydicom.dcmread(sources[0])
    us_result = next(r for r in session.results.values() if r.probabilities is not None)
    assert [s.referenced_sop_instance_uid for s in group.source_images] == [us.SOPInstanceUID]
    assert {m.name.meaning: round(m.value, 4) for m in group.get_measurements()} == \
           {f"AI score: {c}": round(float(p), 4) for c, p in zip(us_result.classes, us_result.probabilities)}
    segmentation = hd.seg.Segmentation.from_dataset(seg)
    expected = seg_result.mask >= mask_layer.threshold
    assert np.array_equal(np.asarray(segmentation.pixel_array).squeeze() > 0, expected) and 0.2 < expected.mean() < 0.8
    assert seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == \
           str(pydicom.dcmread(sources[1]).SOPInstanceUID)
    assert list(sc.ImageType) == ["DERIVED", "SECONDARY"] and sc.BurnedInAnnotation == "YES"
    active = session.active_state.image.info
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == active.sop_uid
    assert no_dialogs()

    orthanc.stop()  # the PACS is down: said in the panel, nothing crashes
    with qtbot.waitSignal(main_window.results_sender.finished, timeout=60000) as failed:
        main_window.actions["send_results"].trigger()
    assert failed.args[1] is False and failed.args[0].startswith(f"Nothing sent to {where}: ")
    assert ("no answer from the DICOMweb server" if web else "no answer from the PACS") in failed.args[0]
    assert no_dialogs()


def test_send_results_of_images_that_are_not_dicom_says_why_nothing_was_sent(qtbot, models, main_window, pacs_file,
                                                                             tmp_path):
    import cv2

    folder = tmp_path / "png"
    folder.mkdir()
    cv2.imwrite(str(folder / "scan.png"), np.random.default_rng(1).integers(0, 255, (96, 128), np.uint8))
    main_window.ai.model_box.setCurrentIndex(main_window.ai.model_box.findData("toy-ot-seg"))
    main_window.open_paths([folder])
    qtbot.waitUntil(lambda: main_window.session.is_fully_painted and not main_window.loader.busy, timeout=30000)
    with qtbot.waitSignal(main_window.results_sender.finished, timeout=10000) as early:
        main_window.actions["send_results"].trigger()
    assert "run the AI on the study first" in early.args[0]
    with qtbot.waitSignal(main_window.ai.run_finished, timeout=120000):
        main_window.actions["run_ai"].trigger()
    with qtbot.waitSignal(main_window.results_sender.finished, timeout=60000) as sent:
        main_window.actions["send_results"].trigger()
    summary, ok = sent.args
    assert not ok and summary.splitlines() == [
        "Nothing to send: no result of a DICOM image",
        "not sent: scan.png: not a DICOM image: a PACS takes results of DICOM images only"]
    assert main_window.session.exports == []


def test_predict_send_stores_an_sr_and_a_seg_per_study_and_skips_other_images(models, pacs_file, orthanc,
                                                                               tmp_path):
    import cv2

    sources = mixed_study(tmp_path / "in" / "study")
    cv2.imwrite(str(tmp_path / "in" / "R_CC.png"), np.zeros((64, 64), np.uint8))  # named as a view: MG model
    env = {**os.environ, "RADLENS_PACS_SETTINGS": str(pacs_file), "RADLENS_MODEL_PATH": str(models)}
    done = subprocess.run([sys.executable, "-m", "app", "predict", str(tmp_path / "in"), str(tmp_path / "out"),
                           "--no-visualizations", "--send"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Sent to ORTHANC@127.0.0.1:{orthanc.dicom_port}: 1 DICOM SEG, 1 findings SR" in done.stdout
    arrived = stored(orthanc)
    assert sorted(arrived) == sorted([SR_CLASS, SEG_CLASS])
    study = str(pydicom.dcmread(sources[0]).StudyInstanceUID)
    assert {arrived[SR_CLASS][0].StudyInstanceUID, arrived[SEG_CLASS][0].StudyInstanceUID} == {study}
    assert sorted(p.name for p in (tmp_path / "out" / "dicom").iterdir()) == ["seg-001.dcm", "sr-001.dcm"]
    assert "3 image(s) predicted" in done.stdout
    assert "not sent: R_CC.png: not a DICOM image: a PACS takes results of DICOM images only" in done.stdout

    settings_file = tmp_path / "bad.json"
    settings_file.write_text("{not json")
    bad = subprocess.run([sys.executable, "-m", "app", "predict", str(tmp_path / "in"), str(tmp_path / "out2"),
                          "--send"], cwd=ROOT, env={**env, "RADLENS_PACS_SETTINGS": str(settings_file)},
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "cannot read the PACS settings" in bad.stderr and "Traceback" not in bad.stderr
