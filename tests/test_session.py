"""The reading session (Qt-free) and the widgets built on it, tested the napari way: build one widget on a
session, change the session, check the view."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.layers import MASK
from app.inference.registry import ModelRegistry
from app.inference.results import InferenceResult
from app.io.study_loader import decode_series, scan
from app.session import ReadingSession
from tests.test_side_by_side import loose_images


def _opened(tmp_path, count: int = 3) -> ReadingSession:
    """A session that read `count` loose PNGs (shown side by side) and decoded every image."""
    loose_images(tmp_path / "in", count)
    result = scan([tmp_path / "in"])
    session = ReadingSession()
    session.start_reading()
    session.finish_reading(result.studies, result.problems)
    _decode(session)
    return session


def _decode(session: ReadingSession) -> None:
    for series in session.shown.series:
        image, _ = decode_series(series)
        session.add_image(session.shown.key, series, image)
    session.finish_decoding(session.shown.key)


def _result(session: ReadingSession, series_identity: str, *, mask_value: float = 0.7) -> InferenceResult:
    image = session.states[series_identity].image
    mask = np.zeros((image.height, image.width), np.float32)
    mask[: image.height // 2] = mask_value
    return InferenceResult(image_identity=image.info.identity, model_key="toy-seg@1", task="segmentation",
                           classes=("lesion",), device="cpu", mask=mask, threshold=0.5)


# ---- the session alone ----------------------------------------------------------------------------
def test_loose_images_are_shown_side_by_side_and_become_jobs_in_hanging_order(tmp_path):
    session = _opened(tmp_path)
    assert session.shown.is_side_by_side and len(session.on_screen) == 3
    jobs = session.inference_jobs()
    assert [job.series_identity for job in jobs] == session.cells() and len(jobs) == 3
    assert session.active == session.cells()[0] and not session.link.enabled


def test_what_arrives_for_another_study_or_another_image_is_dropped(tmp_path):
    session = _opened(tmp_path)
    first, second = session.cells()[:2]
    other = session.studies[0]
    image, _ = decode_series(other.series[0])
    assert session.add_image("some other study", other.series[0], image) is None
    wrong = _result(session, second)
    assert not session.add_result(session.shown.key, first, wrong)  # computed for the image in the next cell
    assert not session.add_result("some other study", second, wrong)
    assert session.add_result(session.shown.key, second, wrong) and len(session.layers.layers) == 1
    session.show([session.studies[0]])  # another study on screen: the old results and layers go
    assert not session.results and not session.layers.layers and not session.states


def test_the_reader_s_mask_threshold_is_the_one_every_reader_of_the_result_gets(tmp_path):
    session = _opened(tmp_path)
    series = session.cells()[0]
    session.add_result(session.shown.key, series, _result(session, series))
    (layer,) = session.layers.layers
    assert layer.kind == MASK and session.result_for(series).threshold == 0.5
    layer.threshold = 0.8
    assert session.result_for(series).threshold == pytest.approx(0.8)


def test_drawn_waits_for_reading_decoding_painting_and_the_run(tmp_path):
    loose_images(tmp_path / "in", 2)
    result = scan([tmp_path / "in"])
    session = ReadingSession()
    drawn = []
    session.drawn.connect(lambda: drawn.append(True))
    assert session.is_drawn  # nothing open
    session.start_reading()
    assert not session.is_drawn
    session.finish_reading(result.studies, result.problems)
    assert not session.is_drawn  # decoding
    _decode(session)
    first, second = session.cells()
    session.mark_painted(first)
    assert not session.is_drawn and not drawn
    session.set_run(session.inference_jobs())
    session.mark_painted(second)
    assert session.is_fully_painted and not session.is_drawn  # the AI is still running
    session.set_run(())
    assert session.is_drawn and drawn


def test_a_series_that_fails_is_not_waited_for(tmp_path):
    loose_images(tmp_path / "in", 2)
    result = scan([tmp_path / "in"])
    session = ReadingSession()
    session.finish_reading(result.studies, result.problems)
    first, second = session.shown.series
    image, _ = decode_series(first)
    session.add_image(session.shown.key, first, image)
    session.fail_series(session.shown.key, second, "truncated")
    session.finish_decoding(session.shown.key)
    session.mark_painted(first.identity)
    assert session.is_drawn and session.failed == {second.identity: "truncated"}


def test_the_grid_changes_and_the_images_stay(tmp_path):
    session = _opened(tmp_path)
    states = dict(session.states)
    assert (session.hanging.rows, session.hanging.columns) == (2, 2)
    assert session.next_grid() == "row"
    assert (session.hanging.rows, session.hanging.columns) == (1, 3) and session.states == states


def test_a_mammogram_is_shown_alone_even_when_selected_with_others(tmp_path):
    from tests.dicom_factory import four_view_phantom

    four_view_phantom(tmp_path / "mg")
    loose_images(tmp_path / "us", 1)
    result = scan([tmp_path])
    session = ReadingSession()
    session.finish_reading(result.studies, result.problems)
    mammo = next(s for s in session.studies if s.is_mammography)
    session.show(session.studies, current=mammo)
    assert session.shown is mammo and session.hanging.is_four_view and session.link.enabled


def test_problems_are_kept_once(tmp_path):
    from app.io.errors import LoadProblem

    session = ReadingSession()
    told = []
    session.problems_added.connect(told.append)
    problem = LoadProblem(tmp_path / "x.dcm", "not DICOM")
    assert session.add_problems([problem, problem]) == [problem]
    assert session.add_problems([problem]) == [] and told == [[problem]]


# ---- widgets built on a session -------------------------------------------------------------------
def test_the_study_view_draws_what_the_session_holds(qtbot, tmp_path):
    from app.ui.study_view import StudyView

    session = ReadingSession()
    view = StudyView(session)
    qtbot.addWidget(view)
    view.resize(800, 600)
    view.show()
    assert not view.viewports
    loose_images(tmp_path / "in", 3)
    result = scan([tmp_path / "in"])
    session.finish_reading(result.studies, result.problems)
    assert len(view.viewports) == 3 and all(v.state is None for v in view.viewports)  # a 2x2 grid of three
    _decode(session)
    bound = [v for v in view.viewports if v.state is not None]
    assert [v.state for v in bound] == [session.states[s] for s in session.cells()]
    qtbot.waitUntil(lambda: session.is_fully_painted, timeout=10000)  # the view told the session it painted

    second = session.cells()[1]
    session.set_active(second)
    assert view.active is view.viewport_by_series[second]
    session.add_result(session.shown.key, second, _result(session, second))
    assert list(view.viewport_by_series[second].overlays) == session.layers.layers
    assert not view.viewport_by_series[session.cells()[0]].overlays
    session.layers.set_all_hidden(True)
    assert view.viewport_by_series[second].overlays_hidden

    session.next_grid()  # one row: the view rebuilds its cells, with the images and layers it had
    assert {view.grid.getItemPosition(view.grid.indexOf(v))[:2] for v in view.viewports} == {(0, 0), (0, 1), (0, 2)}
    assert view.viewport_by_series[second].state is session.states[second]
    assert list(view.viewport_by_series[second].overlays) == session.layers.layers

    view.activate(view.viewport_by_series[session.cells()[2]])  # a click commands the session
    assert session.active == session.cells()[2]


def test_the_ai_panel_shows_the_active_image_s_result_from_the_session(qtbot, tmp_path, app_settings):
    from app.ui.ai_dock import AiDock

    session = _opened(tmp_path, 2)
    dock = AiDock(session, app_settings, registry=ModelRegistry())
    qtbot.addWidget(dock)
    first, second = session.cells()
    session.add_result(session.shown.key, second, _result(session, second))
    assert "No result" in dock.results_panel.title.text()  # the active image (the first) has none
    session.set_active(second)
    assert "toy-seg@1" in dock.results_panel.title.text()
    assert [control.layer for control in dock.layer_panel.controls] == session.layers.layers
    session.layers.layers[0].threshold = 0.9  # the reader moves the mask threshold: the panel's line follows
    from PySide6 import QtWidgets

    labels = [w.text() for w in dock.results_panel.findChildren(QtWidgets.QLabel)]
    assert any("p ≥ 0.90" in text for text in labels)
    session.show([session.studies[0]])
    assert "No result" in dock.results_panel.title.text()


def test_the_ai_panel_says_why_there_is_no_layer_to_choose(qtbot, tmp_path, app_settings):
    from app.ui.ai_dock import AiDock

    dock = AiDock(_opened(tmp_path, 1), app_settings)  # the shipped models
    qtbot.addWidget(dock)
    assert dock.model_box.currentData() == ""  # Automatic: each image's model picks its own layer
    assert not dock.layer_list.isEnabled() and "own default layer" in dock.layer_list.item(0).text()
    dock.model_box.setCurrentIndex(dock.model_box.findData("mg-glam-lite"))  # GLAM draws saliency maps itself
    assert not dock.layer_list.isEnabled() and not dock.method_box.isEnabled()
    assert "draws its own maps" in dock.layer_list.item(0).text() and dock.options().layers == ()
    dock.model_box.setCurrentIndex(dock.model_box.findData("us-breast-cls"))
    assert dock.layer_list.isEnabled() and dock.method_box.isEnabled() and dock.target_box.isEnabled()
    assert dock.options().layers == ("head (1/32)",) and dock.layer_list.count() == 6


# ---- priors and comparison ------------------------------------------------------------------------
def _mammograms_of_one_patient(tmp_path):
    """A current and a prior four-view exam of one patient, another patient's exam, and a dateless one."""
    from tests.dicom_factory import mg_study

    mg_study(tmp_path / "current", PatientID="P1", StudyDate="20240510", StudyDescription="Screening")
    mg_study(tmp_path / "prior", PatientID="P1", StudyDate="20220302", StudyDescription="Screening")
    mg_study(tmp_path / "older", PatientID="P1", StudyDate="20200101", StudyDescription="Screening")
    mg_study(tmp_path / "other", PatientID="P2", StudyDate="20210101", StudyDescription="Screening")
    result = scan([tmp_path])
    session = ReadingSession()
    session.finish_reading(result.studies, result.problems)
    by_date = {study.date: study for study in session.studies}
    session.show([by_date["2024-05-10"]])
    return session, by_date


def test_a_folder_with_a_current_and_its_priors_opens_on_the_current(tmp_path):
    from tests.dicom_factory import mg_study

    for name, date in (("a_prior", "20220302"), ("b_current", "20240510"), ("c_older", "20200101")):
        mg_study(tmp_path / name, PatientID="P1", StudyDate=date, StudyDescription="Screening")
    result = scan([tmp_path])
    session = ReadingSession()
    session.finish_reading(result.studies, result.problems)
    assert [study.date for study in session.studies] == ["2024-05-10", "2022-03-02", "2020-01-01"]
    assert session.shown.date == "2024-05-10"
    assert [p.date for p in session.priors()] == ["2022-03-02", "2020-01-01"]


def test_priors_are_the_same_patient_s_earlier_studies_newest_first(tmp_path):
    session, by_date = _mammograms_of_one_patient(tmp_path)
    assert [p.date for p in session.priors()] == ["2022-03-02", "2020-01-01"]
    session.show([by_date["2022-03-02"]])
    assert [p.date for p in session.priors()] == ["2020-01-01"]  # a later study is never a prior


def test_a_mammogram_hangs_over_its_prior_each_view_linked_with_its_prior(tmp_path):
    session, by_date = _mammograms_of_one_patient(tmp_path)
    current, prior = by_date["2024-05-10"], by_date["2022-03-02"]
    session.compare(prior)
    assert session.current is current and session.on_screen == (current, prior) and session.link.enabled
    cells = {(c.row, c.column): c.label for c in session.hanging.cells}
    assert cells[(0, 0)] == "R CC\ncurrent 2024-05-10" and cells[(1, 0)] == "R CC\nprior 2022-03-02"
    assert [cells[(0, c)].splitlines()[0] for c in range(4)] == ["R CC", "L CC", "R MLO", "L MLO"]
    _decode(session)
    assert len(session.states) == 8
    by_label = {c.label: session.states[c.series.identity] for c in session.hanging.cells}
    before_prior_l = by_label["L CC\nprior 2022-03-02"].zoom_text()
    by_label["R CC\ncurrent 2024-05-10"].zoom_by(2.0)
    assert by_label["R CC\nprior 2022-03-02"].zoom_text() == by_label["R CC\ncurrent 2024-05-10"].zoom_text()
    assert by_label["L CC\nprior 2022-03-02"].zoom_text() == before_prior_l  # another view: not linked

    assert session.next_grid() == "prior beside current"  # G: the prior's 2x2 beside the current's
    cells = {(c.row, c.column): c.label for c in session.hanging.cells}
    assert cells[(0, 0)].startswith("R CC\ncurrent") and cells[(0, 2)].startswith("R CC\nprior")
    assert cells[(1, 3)].startswith("L MLO\nprior") and len(session.states) == 8


def test_a_comparison_s_results_give_exam_scores_for_current_and_prior_apart(tmp_path):
    session, by_date = _mammograms_of_one_patient(tmp_path)
    session.compare(by_date["2022-03-02"])
    _decode(session)
    for cell in session.hanging.cells:
        image = session.states[cell.series.identity].image
        malignant = 0.9 if "current" in cell.label and cell.label.startswith("L") else 0.1
        result = InferenceResult(image_identity=image.info.identity, model_key="toy-glam@1", task="glam",
                                 classes=("benign", "malignant"), device="cpu",
                                 probabilities=np.array([0.2, malignant], np.float32))
        assert session.add_result(session.shown.key, cell.series.identity, result)
    current, prior = session.exam_scores(), session.exam_scores(by_date["2022-03-02"])
    assert set(current.views) == set(prior.views) == {"R CC", "L CC", "R MLO", "L MLO"}
    assert current.exam[1] == pytest.approx(0.9) and prior.exam[1] == pytest.approx(0.1)


def test_p_in_the_window_hangs_the_prior_and_says_so_when_there_is_none(qtbot, main_window, tmp_path):
    from tests.test_ui import open_and_wait

    _mammograms_of_one_patient(tmp_path)
    main_window.resize(1800, 1000)  # eight views in four columns: each wide enough for its date
    open_and_wait(qtbot, main_window, [tmp_path])
    newest = max(main_window.session.studies, key=lambda s: (s.patient_id == "P1", s.date))
    main_window.study_list.setCurrentRow(main_window.session.studies.index(newest))
    qtbot.waitUntil(lambda: main_window.session.is_fully_painted, timeout=20000)
    main_window.actions["compare_prior"].trigger()
    qtbot.waitUntil(lambda: main_window.session.is_fully_painted and not main_window.loader.busy, timeout=20000)
    labels = sorted(v.corners["tl"].text() for v in main_window.study_view.viewports)
    assert len(labels) == 8 and sum("prior 2022-03-02" in label for label in labels) == 4
    main_window.actions["compare_prior"].trigger()  # again: the next older prior
    qtbot.waitUntil(lambda: main_window.session.is_fully_painted and not main_window.loader.busy, timeout=20000)
    assert sum("prior 2020-01-01" in v.label for v in main_window.study_view.viewports) == 4
    other = next(s for s in main_window.session.studies if s.patient_id == "P2")
    main_window.study_list.setCurrentRow(main_window.session.studies.index(other))
    main_window.actions["compare_prior"].trigger()
    assert "No earlier study" in main_window.statusBar().currentMessage()


def test_another_modality_s_prior_is_read_beside_it_in_the_grid_with_dates(tmp_path):
    from tests.dicom_factory import write_dicom

    for name, date in (("now", "20240301"), ("then", "20230301")):
        write_dicom(tmp_path / f"{name}.dcm", np.full((40, 50), 900, np.uint16), Modality="CR", PatientID="P9",
                    StudyDate=date, StudyInstanceUID=f"1.2.3.{date}")
    result = scan([tmp_path])
    session = ReadingSession()
    session.finish_reading(result.studies, result.problems)
    current = next(s for s in session.studies if s.date == "2024-03-01")
    session.show([current])
    (prior,) = session.priors()
    session.compare(prior)
    assert session.shown.is_side_by_side and session.on_screen == (current, prior)
    assert [c.label.splitlines()[1] for c in session.hanging.cells] == ["current 2024-03-01", "prior 2023-03-01"]
    session.next_grid()
    assert [c.label.splitlines()[1] for c in session.hanging.cells] == ["current 2024-03-01", "prior 2023-03-01"]
