"""Viewport state: gestures, fitting, anchoring and linking, without any window."""

import numpy as np
import pytest

from app.core.display import Window
from app.core.image import ImageInfo, LoadedImage
from app.core.viewport_state import ViewportLink, ViewportState


def make_state(width=200, height=100, anchor="center", **info):
    frames = np.linspace(0, 4095, width * height).reshape(1, height, width).astype(np.uint16)
    image = LoadedImage(ImageInfo(path=__import__("pathlib").Path("x"), source_format="png", **info),
                        frames, (0.0, 4095.0))
    state = ViewportState(image, anchor=anchor)
    state.set_viewport_size(400, 400)
    return state


def test_fit_shows_the_whole_image_centred():
    state = make_state()
    assert state.effective_scale == pytest.approx(2.0)
    x, y, w, h = state.visible_rect()
    assert (x + w / 2, y + h / 2) == pytest.approx((100, 50)) and w == pytest.approx(200)


@pytest.mark.parametrize("anchor, left_edge", [("right", None), ("left", 0.0)])
def test_fit_anchor_keeps_the_chest_wall_edge_on_the_viewport_edge(anchor, left_edge):
    state = make_state(width=100, height=200, anchor=anchor)  # scale 2: 200 px wide image in 400 px
    x, _, w, _ = state.visible_rect()
    if anchor == "right":
        assert x + w == pytest.approx(100)
    else:
        assert x == pytest.approx(left_edge)


def test_zoom_keeps_the_point_under_the_pointer():
    state = make_state()
    x, y, w, h = state.visible_rect()
    point = (x + 0.25 * w, y + 0.75 * h)
    state.zoom_by(2.0, at=(0.25, 0.75))
    x, y, w, h = state.visible_rect()
    assert (x + 0.25 * w, y + 0.75 * h) == pytest.approx(point)
    assert state.effective_scale == pytest.approx(4.0)


def test_pan_moves_the_image_with_the_mouse():
    state = make_state()
    before = state.effective_center
    state.pan_by(40, -20)  # screen pixels at scale 2
    assert state.effective_center == pytest.approx((before[0] - 20, before[1] + 10))


def test_right_drag_widens_window_and_raises_level():
    state = make_state()
    start = state.window
    state.drag_window(80, 40)
    assert state.window.width > start.width and state.window.center > start.center
    assert state.preset_name == ""


def test_presets_put_file_presets_first_then_auto_and_full_range():
    from app.core.image import WindowPreset

    state = make_state(window_presets=(WindowPreset("FILE", Window(100, 50)),))
    assert [p.name for p in state.presets] == ["FILE", "Auto", "Full range"]
    assert state.window == Window(100, 50)
    assert state.select_preset("Full range") and state.window.bounds == (0.0, 4095.0)


def test_linked_viewports_repeat_window_zoom_pan_and_invert_only_when_enabled():
    a, b = make_state(), make_state()
    link = ViewportLink(enabled=True)
    link.add(a)
    link.add(b)
    a.set_window(Window(500, 100))
    a.zoom_by(2.0)
    a.set_invert(True)
    assert b.window == Window(500, 100) and b.effective_scale == pytest.approx(4.0) and b.invert
    a.pan_by(10, 0)
    assert b.effective_center == pytest.approx(a.effective_center)
    link.enabled = False
    a.set_window(Window(900, 10))
    assert b.window == Window(500, 100)


def test_frames_are_clamped():
    state = make_state()
    state.set_frame(99)
    assert state.frame == 0


def test_changing_the_state_notifies_observers_once():
    state = make_state()
    seen = []
    state.changed.connect(lambda change: seen.append(change.kind))
    state.set_window(Window(1, 2))
    with state.changed.blocker():
        state.fit()
    assert seen == ["window"]


def test_linked_viewports_fit_at_one_common_scale():
    small, large = make_state(width=200, height=100), make_state(width=400, height=400)
    assert small.effective_scale == pytest.approx(2.0) and large.effective_scale == pytest.approx(1.0)
    link = ViewportLink(enabled=True)
    link.add(small)
    link.add(large)
    assert small.effective_scale == pytest.approx(1.0) == large.effective_scale
    link.enabled = False
    assert small.effective_scale == pytest.approx(2.0)
