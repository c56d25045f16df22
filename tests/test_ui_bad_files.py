"""The window with bad files: a failing scan still finishes, odd names are drawn, problems are logged once."""

from __future__ import annotations

import logging

import numpy as np

from app.ui import study_loading
from tests import bad_inputs
from tests.bad_inputs import dicom_bytes
from tests.test_ui import open_and_wait

PIXELS = np.random.default_rng(0).integers(0, 4095, (32, 32)).astype(np.uint16)


def test_a_scan_worker_that_fails_ends_in_a_problem_and_a_finished_scan(qtbot, main_window, tmp_path, monkeypatch):
    def failing_scan(paths):
        yield 0, 1, "x"
        raise NotImplementedError("Unknown Value Representation 'ZZ'")  # a RuntimeError: superqt drops those

    monkeypatch.setattr(study_loading, "iter_scan", failing_scan)
    main_window.open_paths([tmp_path])
    qtbot.waitUntil(lambda: not main_window.session.reading and not main_window.loader.busy, timeout=10000)
    assert [(p.path, p.reason) for p in main_window.session.problems] == [
        (tmp_path, "reading stopped (NotImplementedError: Unknown Value Representation 'ZZ')")]
    assert main_window.problem_list.item(0).text().startswith(f"{tmp_path.name}: reading stopped")


def test_header_errors_of_every_kind_leave_the_good_file_open(qtbot, main_window, tmp_path):
    broken = bad_inputs._broken_dicoms(tmp_path, np.random.default_rng(0))
    (tmp_path / "good.dcm").write_bytes(dicom_bytes(PIXELS))
    open_and_wait(qtbot, main_window, [tmp_path])
    opened = [i.path.name for s in main_window.session.studies for i in s.images]
    assert "good.dcm" in opened
    listed = {p.path.name for p in main_window.session.problems}
    assert {m.path.name for m in broken} - set(opened) <= listed


def test_a_file_named_with_invalid_utf8_is_drawn_and_listed_escaped(qtbot, main_window, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    good = bad_inputs._png(bad_inputs._odd_name(folder, b"scan-\xff.png"), PIXELS.astype(np.uint8)).path
    bad_inputs._write(bad_inputs._odd_name(folder, b"junk-\xe9.dcm"), b"not DICOM", "bad", "junk")
    open_and_wait(qtbot, main_window, [good])
    assert main_window.study_view.viewports[0].state.image.info.path == good
    main_window.open_paths([folder])
    qtbot.waitUntil(lambda: not main_window.session.reading and not main_window.loader.busy, timeout=10000)
    assert main_window.problem_list.count() == 1, main_window.session.problems
    assert main_window.problem_list.item(0).text().startswith("junk-\\xe9.dcm: not an image")
    assert main_window.study_list.item(0).text().startswith("scan-\\xff.png")


def test_each_problem_is_logged_once_where_it_is_shown_without_patient_data(qtbot, main_window, tmp_path, caplog):
    (tmp_path / "good.dcm").write_bytes(dicom_bytes(PIXELS))
    data = dicom_bytes(PIXELS, PatientName="SECRET^NAME", PatientID="ID-98765")
    (tmp_path / "cut.dcm").write_bytes(data[:-100])  # the header reads; the pixels are short
    (tmp_path / "notes.txt").write_text("hello")
    caplog.set_level(logging.INFO)
    open_and_wait(qtbot, main_window, [tmp_path])
    for row in range(main_window.study_list.count()):
        main_window.study_list.setCurrentRow(row)
        qtbot.waitUntil(lambda: not main_window.loader.busy and main_window.session.is_fully_painted,
                        timeout=10000)
    records = [r.getMessage() for r in caplog.records if r.name.startswith("radlens")]
    assert sum("notes.txt" in m and "not an image" in m for m in records) == 1, records
    assert sum("cut.dcm" in m and "truncated" in m for m in records) == 1, records
    assert not any("SECRET" in m or "98765" in m for m in caplog.text.splitlines()), caplog.text
