"""The window, offscreen: what the reader sees in each quadrant, gestures, stale results, drops."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from app.core.display import Window
from tests.dicom_factory import four_view_phantom, write_dicom

ROOT = Path(__file__).resolve().parents[1]


def grab_grey(widget: QtWidgets.QWidget) -> np.ndarray:
    image = widget.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_Grayscale8)
    data = np.frombuffer(image.constBits(), np.uint8, image.sizeInBytes())
    return data.reshape(image.height(), image.bytesPerLine())[:, : image.width()].copy()


def open_and_wait(qtbot, window, paths):
    window.open_paths(paths)
    qtbot.waitUntil(lambda: not window.session.reading and not window.loader.busy and window.session.is_fully_painted,
                    timeout=30000)


def test_four_view_layout_shows_each_view_in_its_quadrant_chest_walls_in_the_middle(qtbot, main_window, tmp_path):
    four_view_phantom(tmp_path)
    open_and_wait(qtbot, main_window, [tmp_path])
    view = main_window.study_view
    for viewport in view.viewports:
        for label in [*viewport.corners.values(), *viewport.markers.values()]:
            label.hide()  # measure image pixels, not the corner text
    grey = grab_grey(view).astype(float)
    h, w = grey.shape
    quadrants = {"R CC": grey[: h // 2, : w // 2], "L CC": grey[: h // 2, w // 2:],
                 "R MLO": grey[h // 2:, : w // 2], "L MLO": grey[h // 2:, w // 2:]}
    # The phantom's tissue grey rises R CC < L CC < R MLO < L MLO (window 0..4095).
    means = {k: q[q > 8].mean() for k, q in quadrants.items()}
    expected = {"R CC": 1000, "L CC": 2000, "R MLO": 3000, "L MLO": 4000}
    for label, value in expected.items():
        assert abs(means[label] - value * 255 / 4095) < 12, (label, means)
    # Tissue lies against the chest wall: right breasts against the middle from the left, left from the right.
    for label, quad in quadrants.items():
        strip = quad.shape[1] // 8
        inner = quad[:, -strip:] if label.startswith("R") else quad[:, :strip]
        outer = quad[:, :strip] if label.startswith("R") else quad[:, -strip:]
        assert inner.mean() > 40 and outer.mean() < 5, label


def test_changing_the_state_updates_the_drawn_levels(qtbot, main_window, tmp_path):
    four_view_phantom(tmp_path)
    open_and_wait(qtbot, main_window, [tmp_path])
    viewport = main_window.study_view.viewports[0]
    viewport.state.set_window(Window(1000, 200))
    assert tuple(viewport.image_item.levels) == pytest.approx(viewport.state.transfer().levels)
    assert "W 200 L 1000" in viewport.corners["bl"].text()


def test_linked_window_level_by_right_drag_reaches_every_mammogram(qtbot, main_window, tmp_path):
    four_view_phantom(tmp_path)
    open_and_wait(qtbot, main_window, [tmp_path])
    view = main_window.study_view
    assert main_window.actions["link"].isChecked()  # linked by default for mammograms
    canvas = view.viewports[0].canvas
    right = QtCore.Qt.MouseButton.RightButton

    def mouse(kind, x, y):
        return QtGui.QMouseEvent(kind, QtCore.QPointF(x, y), QtCore.QPointF(x, y), right, right,
                                 QtCore.Qt.KeyboardModifier.NoModifier)

    canvas.mousePressEvent(mouse(QtCore.QEvent.Type.MouseButtonPress, 50, 50))
    canvas.mouseMoveEvent(mouse(QtCore.QEvent.Type.MouseMove, 150, 90))
    windows = {v.state.window for v in view.viewports}
    assert len(windows) == 1 and next(iter(windows)) != Window(2048, 4096)


def test_wheel_zooms_and_fit_restores(qtbot, main_window, tmp_path):
    four_view_phantom(tmp_path)
    open_and_wait(qtbot, main_window, [tmp_path])
    state = main_window.study_view.viewports[0].state
    fit = state.effective_scale
    main_window.study_view.viewports[0].zoom(2.0, (0.5, 0.5))
    assert state.effective_scale == pytest.approx(2 * fit)
    main_window.actions["fit"].trigger()
    assert state.scale is None and state.effective_scale == pytest.approx(fit)


def test_late_results_of_a_previous_study_never_land_on_the_new_one(qtbot, main_window, tmp_path, monkeypatch):
    import app.io.study_loader as loader

    slow_folder, fast_folder = tmp_path / "slow", tmp_path / "fast"
    four_view_phantom(slow_folder)
    write_dicom(fast_folder / "us.dcm", np.full((32, 32), 77, np.uint8), Modality="US")
    release = threading.Event()
    real = loader.decode_series

    def decode_series(series):
        if slow_folder in series.first.path.parents:
            release.wait(10)
        return real(series)

    monkeypatch.setattr(loader, "decode_series", decode_series)
    main_window.open_paths([slow_folder, fast_folder])
    qtbot.waitUntil(lambda: not main_window.session.reading and len(main_window.session.studies) == 2, timeout=10000)
    slow_study = next(s for s in main_window.session.studies if s.is_mammography)
    fast_study = next(s for s in main_window.session.studies if not s.is_mammography)
    main_window.study_list.setCurrentRow(main_window.session.studies.index(slow_study))
    qtbot.wait(50)
    main_window.study_list.setCurrentRow(main_window.session.studies.index(fast_study))  # switch while slow decodes
    landed = []
    main_window.loader.image_ready.connect(lambda key, series, image: landed.append(key))
    release.set()
    qtbot.waitUntil(lambda: main_window.session.is_fully_painted, timeout=10000)
    qtbot.wait(300)  # give any late slow result time to arrive
    shown = [v.state.image.info.path for v in main_window.study_view.viewports if v.state]
    assert shown == [fast_folder / "us.dcm"]
    assert slow_study.key not in landed


def test_unreadable_files_are_listed_and_the_rest_of_the_study_opens(qtbot, main_window, tmp_path):
    paths = four_view_phantom(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    data = paths["L MLO"].read_bytes()
    paths["L MLO"].write_bytes(data[: len(data) - 5000])  # truncated pixel data
    main_window.open_paths([tmp_path])
    qtbot.waitUntil(lambda: not main_window.session.reading and not main_window.loader.busy
                    and main_window.problem_list.count() == 2, timeout=20000)
    reasons = sorted(main_window.problem_list.item(i).text() for i in range(2))
    assert reasons[0].startswith("notes.txt: not an image")
    assert reasons[1].startswith("view4.dcm: truncated file")
    cells = {v.label: v for v in main_window.study_view.viewports}
    assert all(cells[k].state is not None for k in ("R CC", "L CC", "R MLO"))
    assert cells["L MLO"].state is None and "could not be opened" in cells["L MLO"].placeholder.text()


def test_dropping_a_folder_opens_it_and_remembers_it(qtbot, main_window, tmp_path, app_settings):
    four_view_phantom(tmp_path)
    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(str(tmp_path))])
    event = QtGui.QDropEvent(QtCore.QPointF(10, 10), QtCore.Qt.DropAction.CopyAction, mime,
                             QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier)
    main_window.dropEvent(event)
    qtbot.waitUntil(lambda: main_window.session.is_fully_painted, timeout=20000)
    assert len(main_window.session.studies) == 1
    assert app_settings.recent()[0] == [tmp_path.resolve()]


def test_multiframe_cine_gets_a_frame_slider(qtbot, main_window):
    from tests.conftest import pydicom_file

    open_and_wait(qtbot, main_window, [pydicom_file("examples_ybr_color.dcm")])
    viewport = main_window.study_view.viewports[0]
    assert viewport.frame_slider.isVisible() and viewport.frame_slider.maximum() == 29
    main_window.actions["next_frame"].trigger()
    assert viewport.state.frame == 1 and "frame 2/30" in viewport.corners["br"].text()


def test_patient_name_is_hidden_unless_turned_on(qtbot, main_window, tmp_path):
    write_dicom(tmp_path / "a.dcm", np.zeros((16, 16), np.uint8), Modality="US", PatientName="DOE^JANE")
    open_and_wait(qtbot, main_window, [tmp_path])
    corner = main_window.study_view.viewports[0].corners["tr"]
    assert "DOE" not in corner.text()
    main_window.actions["patient_name"].trigger()
    assert "DOE^JANE" in corner.text()


def test_window_geometry_is_remembered(qtbot, app_settings):
    from app.ui.main_window import MainWindow

    first = MainWindow(settings=app_settings)
    qtbot.addWidget(first)
    first.resize(780, 580)  # inside the offscreen screen, which restoreGeometry clamps to
    first.show()
    first.close()
    second = MainWindow(settings=app_settings)
    qtbot.addWidget(second)
    assert (second.width(), second.height()) == (780, 580)


def test_screenshot_command_draws_the_demo_and_exits(tmp_path):
    out = tmp_path / "shot.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    result = subprocess.run([sys.executable, "-m", "app", "demo", "--screenshot", str(out), "--size", "900x600"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    image = QtGui.QImage(str(out))
    assert (image.width(), image.height()) == (900, 600)
    assert len({image.pixel(x, y) for x in range(0, 900, 7) for y in range(0, 600, 7)}) > 50  # not blank


def test_screenshot_of_nothing_readable_exits_nonzero(tmp_path):
    bad = tmp_path / "bad.dcm"
    bad.write_text("nope")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config")}
    result = subprocess.run([sys.executable, "-m", "app", "open", str(bad), "--screenshot", str(tmp_path / "s.png")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and (tmp_path / "s.png").exists()
    assert "nothing could be opened" in result.stderr

def test_an_exit_during_the_background_torch_import_waits_for_it():
    """A screenshot can be saved before torch has loaded; the interpreter must not tear torch down mid-import
    (it printed tracebacks from torch's finalizers in about one run in four)."""
    script = ("import atexit, sys; from app.ui.application import inference_loading_in_background as loading; "
              "atexit.register(lambda: print('ENGINE', hasattr(sys.modules.get('app.inference.runner'), "
              "'InferenceEngine')))\nwith loading(): pass")  # leaves at once, the import only begun
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "ENGINE True" in result.stdout and "Traceback" not in result.stderr, \
        result.stdout + result.stderr



def test_switching_studies_replaces_every_viewport(qtbot, main_window, tmp_path):
    four_view_phantom(tmp_path / "mg")
    write_dicom(tmp_path / "us" / "us.dcm", np.full((32, 32), 77, np.uint8), Modality="US")
    open_and_wait(qtbot, main_window, [tmp_path])
    us_row = next(i for i, s in enumerate(main_window.session.studies) if not s.is_mammography)
    main_window.study_list.setCurrentRow(us_row)
    qtbot.waitUntil(lambda: main_window.session.is_fully_painted and not main_window.loader.busy, timeout=10000)
    visible = [w for w in main_window.study_view.findChildren(QtWidgets.QFrame, "viewport") if w.isVisible()]
    assert len(visible) == 1 and visible[0].state.image.info.modality == "US"
    assert visible[0].width() > main_window.study_view.width() * 0.9  # fills the reading area


def test_a_long_reading_session_exits_cleanly(tmp_path):
    """Thousands of frame steps and window changes, then a normal exit (no crash at shutdown)."""
    script = """
import sys
from PySide6 import QtCore
from app.ui.application import create_application
from app.ui.main_window import MainWindow
from app.ui.settings import AppSettings
from tests.conftest import pydicom_file
app = create_application()
window = MainWindow(AppSettings(QtCore.QSettings(sys.argv[1], QtCore.QSettings.Format.IniFormat)))
window.show()
window.open_paths([pydicom_file("examples_ybr_color.dcm")])
while not (not window.session.reading and not window.loader.busy and window.session.is_fully_painted):
    app.processEvents()
for step in range(3000):
    window.actions["next_frame" if step % 60 < 30 else "previous_frame"].trigger()
    window.actions["patient_name"].trigger()
window.close()
"""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "s.ini")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_without_a_display_the_app_says_so_and_a_screenshot_still_renders(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), XDG_CONFIG_HOME=str(tmp_path / "config"))
    window = subprocess.run([sys.executable, "-m", "app", "demo"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert window.returncode == 2 and "no display found" in window.stderr
    shot = subprocess.run([sys.executable, "-m", "app", "demo", "--screenshot", str(tmp_path / "s.png")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert (tmp_path / "s.png").stat().st_size > 10_000


def _visible_texts(viewport):
    return [label for label in [*viewport.corners.values(), *viewport.markers.values()]
            if label.isVisible() and label.text()]


def test_corner_texts_never_overlap_in_a_narrow_window_with_both_docks(qtbot, main_window, tmp_path):
    paths = four_view_phantom(tmp_path)
    for path in paths.values():  # the longest texts: a spacing, a named window and the patient name
        import pydicom

        ds = pydicom.dcmread(path)
        ds.PixelSpacing, ds.WindowCenterWidthExplanation = [0.0654, 0.0654], "MAMMOGRAPHY WIDE"
        ds.save_as(path)
    main_window.actions["patient_name"].setChecked(True)
    main_window.resize(900, 700)
    main_window.side_dock.show()
    main_window.ai.show()
    open_and_wait(qtbot, main_window, [tmp_path])
    for width in (900, 700):
        main_window.resize(width, 700)
        qtbot.wait(50)
        for viewport in main_window.study_view.viewports:
            texts = _visible_texts(viewport)
            if width == 900:
                assert viewport.corners["tl"] in texts and viewport.corners["bl"] in texts  # label and W/L stay
            for i, a in enumerate(texts):
                assert viewport.canvas.rect().contains(a.geometry()), a.text()
                for b in texts[i + 1:]:
                    assert not a.geometry().intersects(b.geometry()), (width, a.text(), b.text())


def test_orientation_markers_show_and_follow_a_flip_in_the_window(qtbot, main_window, tmp_path):
    four_view_phantom(tmp_path)
    open_and_wait(qtbot, main_window, [tmp_path])
    viewport = next(v for v in main_window.study_view.viewports if v.label == "R CC")
    main_window.study_view.activate(viewport)
    # R CC stored with rows towards A is turned so its chest wall (P) meets the middle, on the right.
    assert (viewport.markers["left"].text(), viewport.markers["right"].text()) == ("A", "P")
    main_window.actions["flip_horizontal"].trigger()
    assert (viewport.markers["left"].text(), viewport.markers["right"].text()) == ("P", "A")
    main_window.reset_view()
    assert viewport.markers["right"].text() == "P"
