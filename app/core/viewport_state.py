"""The state of one viewport (window, zoom, pan, invert, frame) and how gestures change it.

Coordinates are display coordinates: image pixels after the reading flips, x right, y down.
The view reports its size and the user's gestures; the state decides what is visible.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.display import (
    DisplayTransfer,
    VoiLut,
    Window,
    transfer_for_rgb,
    transfer_for_voi_lut,
    transfer_for_window,
)
from app.core.image import LoadedImage, WindowPreset
from app.core.observable import Signal
from app.core.presets import presets_for

MIN_SCALE, MAX_SCALE = 0.01, 64.0
# A drag across this many screen pixels changes the window by the whole stored range.
WINDOW_DRAG_PIXELS = 800.0


@dataclass(frozen=True)
class Change:
    """What a gesture did, so linked viewports can repeat it in their own terms."""

    kind: str  # "window" | "preset" | "invert" | "zoom" | "pan" | "fit" | "one_to_one" | "frame" | "flip" | "reset"
    window: Window | None = None
    preset_name: str = ""
    factor: float = 1.0
    at: tuple[float, float] = (0.5, 0.5)  # zoom anchor as a fraction of the viewport
    delta: tuple[float, float] = (0.0, 0.0)  # pan in screen pixels
    flag: bool = False  # the new invert setting


class ViewportState:
    """Everything a viewport shows about its image; `changed(change)` fires after every change."""

    def __init__(self, image: LoadedImage, *, flip_h: bool = False, flip_v: bool = False,
                 anchor: str = "center") -> None:
        self.image = image
        self.flip_h, self.flip_v, self.anchor = flip_h, flip_v, anchor
        self.hanging_flips = (flip_h, flip_v)  # what the hanging chose; Reset returns to it
        self.presets: tuple[WindowPreset, ...] = presets_for(image)
        self.preset_name = self.presets[0].name
        self.window: Window | None = self.presets[0].window
        self.voi_lut: VoiLut | None = self.presets[0].voi_lut
        self.invert = False
        self.frame = image.frame_count // 2 if image.info.modality in ("MR", "CT") else 0
        self.scale: float | None = None  # screen pixels per image pixel; None fits the viewport
        self.center: tuple[float, float] | None = None
        self.viewport_size = (1.0, 1.0)
        self.fit_peers: list[ViewportState] = []  # linked viewports fit at one common scale
        self.changed = Signal()

    # ---- derived -----------------------------------------------------------------------------
    @property
    def image_size(self) -> tuple[int, int]:
        return self.image.width, self.image.height

    @property
    def own_fit_scale(self) -> float:
        (vw, vh), (w, h) = self.viewport_size, self.image_size
        return max(min(vw / w, vh / h), 1e-6)

    @property
    def fit_scale(self) -> float:
        """The scale that fits this image, or every linked image at one scale so sizes compare."""
        return min([self.own_fit_scale, *(peer.own_fit_scale for peer in self.fit_peers)])

    @property
    def effective_scale(self) -> float:
        return self.scale if self.scale is not None else self.fit_scale

    @property
    def effective_center(self) -> tuple[float, float]:
        if self.center is not None:
            return self.center
        (w, h), visible_w = self.image_size, self.viewport_size[0] / self.effective_scale
        x = {"left": visible_w / 2, "right": w - visible_w / 2}.get(self.anchor, w / 2)
        return x, h / 2

    def visible_rect(self) -> tuple[float, float, float, float]:
        """(x, y, width, height) of the display region the viewport shows."""
        scale = self.effective_scale
        w, h = self.viewport_size[0] / scale, self.viewport_size[1] / scale
        cx, cy = self.effective_center
        return cx - w / 2, cy - h / 2, w, h

    def transfer(self) -> DisplayTransfer:
        info, inverse = self.image.info, self.invert != self.image.info.presentation_inverse
        if self.image.is_rgb:
            return transfer_for_rgb(self.window or Window.from_bounds(0, 255), inverse=self.invert)
        if self.voi_lut is not None:
            return transfer_for_voi_lut(self.voi_lut, stored_range=self.image.stored_range,
                                        slope=info.rescale_slope, intercept=info.rescale_intercept,
                                        inverse=inverse)
        return transfer_for_window(self.window, slope=info.rescale_slope,
                                   intercept=info.rescale_intercept, inverse=inverse)

    def orientation_markers(self) -> dict[str, str]:
        """Patient directions at the four edges of the view ("left", "right", "top", "bottom").

        From Patient Orientation (PS3.3 C.7.6.1.1.1: the first value is the direction of the rows,
        towards increasing column index; the second that of the columns, towards increasing row),
        after the flips the view applies. Empty when the file does not say.
        """
        orientation = self.image.info.patient_orientation
        if not orientation or not all(orientation):
            return {}
        row, column = (direction.upper() for direction in orientation)
        right, left = (opposite_direction(row), row) if self.flip_h else (row, opposite_direction(row))
        bottom, top = (opposite_direction(column), column) if self.flip_v else (column, opposite_direction(column))
        return {"left": left, "right": right, "top": top, "bottom": bottom}

    def window_text(self) -> str:
        if self.voi_lut is not None:
            return f"VOI LUT {self.voi_lut.explanation}".strip()
        return f"W {self.window.width:.0f} L {self.window.center:.0f}"

    def zoom_text(self) -> str:
        return f"{self.effective_scale * 100:.0f}%" + (" fit" if self.scale is None else "")

    # ---- changes ----------------------------------------------------------------------------
    def set_viewport_size(self, width: float, height: float) -> None:
        self.viewport_size = (max(width, 1.0), max(height, 1.0))
        self.changed.emit(Change("resize"))

    def set_window(self, window: Window) -> None:
        self.window, self.voi_lut, self.preset_name = window, None, ""
        self.changed.emit(Change("window", window=window))

    def drag_window(self, dx: float, dy: float) -> None:
        """Right-button drag: right widens the window, down raises its centre."""
        current = self.window or self._window_of_voi_lut()
        lo, hi = self.image.stored_range
        span = max(abs(hi - lo) * abs(self.image.info.rescale_slope), 1.0)
        step = span / WINDOW_DRAG_PIXELS
        self.set_window(current.adjusted(d_center=dy * step, d_width=dx * step))

    def select_preset(self, name: str) -> bool:
        preset = next((p for p in self.presets if p.name == name), None)
        if preset is None:
            return False
        self.preset_name, self.window, self.voi_lut = preset.name, preset.window, preset.voi_lut
        self.changed.emit(Change("preset", preset_name=name))
        return True

    def flip(self, horizontal: bool) -> None:
        """The reader mirrors the view left-right (or top-bottom); markers and pan follow."""
        w, h = self.image_size
        if horizontal:
            self.flip_h = not self.flip_h
        else:
            self.flip_v = not self.flip_v
        if self.center is not None:
            cx, cy = self.center
            self.center = (w - cx, cy) if horizontal else (cx, h - cy)
        self.changed.emit(Change("flip", flag=horizontal))

    def reset(self) -> None:
        """Back to how the hanging showed the image: first preset, not inverted, its flips, fitted.
        One `reset` change, which linked viewports do not repeat (each resets itself)."""
        preset = self.presets[0]
        self.preset_name, self.window, self.voi_lut = preset.name, preset.window, preset.voi_lut
        self.invert = False
        self.flip_h, self.flip_v = self.hanging_flips
        self.scale = self.center = None
        self.changed.emit(Change("reset"))

    def set_invert(self, invert: bool) -> None:
        self.invert = invert
        self.changed.emit(Change("invert", flag=invert))

    def zoom_by(self, factor: float, at: tuple[float, float] = (0.5, 0.5)) -> None:
        """Zoom keeping the point under `at` (fraction of the viewport) where it is."""
        x, y, w, h = self.visible_rect()
        anchor = (x + at[0] * w, y + at[1] * h)
        old = self.effective_scale
        new = min(max(old * factor, MIN_SCALE), MAX_SCALE)
        ratio = old / new
        cx, cy = self.effective_center
        self.scale = new
        self.center = (anchor[0] + (cx - anchor[0]) * ratio, anchor[1] + (cy - anchor[1]) * ratio)
        self.changed.emit(Change("zoom", factor=factor, at=at))

    def pan_by(self, dx: float, dy: float) -> None:
        """Left-button drag by (dx, dy) screen pixels: the image follows the mouse."""
        scale = self.effective_scale
        cx, cy = self.effective_center
        self.scale = scale
        self.center = (cx - dx / scale, cy - dy / scale)
        self.changed.emit(Change("pan", delta=(dx, dy)))

    def fit(self) -> None:
        self.scale, self.center = None, None
        self.changed.emit(Change("fit"))

    def one_to_one(self) -> None:
        cx, cy = self.effective_center
        self.scale, self.center = 1.0, (cx, cy)
        self.changed.emit(Change("one_to_one"))

    def set_frame(self, frame: int) -> None:
        self.frame = min(max(int(frame), 0), self.image.frame_count - 1)
        self.changed.emit(Change("frame"))

    def apply(self, change: Change) -> None:
        """Repeat a change made in a linked viewport."""
        match change.kind:
            case "window":
                self.set_window(change.window)
            case "preset":
                self.select_preset(change.preset_name)
            case "invert":
                self.set_invert(change.flag)
            case "zoom":
                self.zoom_by(change.factor, change.at)
            case "pan":
                self.pan_by(*change.delta)
            case "fit":
                self.fit()
            case "one_to_one":
                self.one_to_one()

    def _window_of_voi_lut(self) -> Window:
        info = self.image.info
        lo, hi = self.image.stored_range
        a, b = lo * info.rescale_slope + info.rescale_intercept, hi * info.rescale_slope + info.rescale_intercept
        return Window.from_bounds(min(a, b), max(a, b))


OPPOSITE_DIRECTION = {"A": "P", "P": "A", "L": "R", "R": "L", "H": "F", "F": "H"}


def opposite_direction(direction: str) -> str:
    """The opposite patient direction, letter by letter ("AF" -> "PH"); unknown letters kept."""
    return "".join(OPPOSITE_DIRECTION.get(letter, letter) for letter in direction)


LINKED_KINDS = {"window", "preset", "invert", "zoom", "pan", "fit", "one_to_one"}


class ViewportLink:
    """Repeats window, invert, zoom and pan gestures of one viewport in the others of its group while
    enabled, and makes a group's viewports fit at one common scale (one group unless told otherwise;
    a mammogram beside its prior links each view with its prior)."""

    def __init__(self, enabled: bool) -> None:
        self.states: list[ViewportState] = []
        self.groups: dict[int, str] = {}  # id(state) -> its group
        self._enabled = enabled
        self._repeating = False

    @property
    def enabled(self) -> bool:
        return self._enabled

    @enabled.setter
    def enabled(self, enabled: bool) -> None:
        self._enabled = enabled
        self._share_fit_scale()

    def add(self, state: ViewportState, group: str = "") -> None:
        self.states.append(state)
        self.groups[id(state)] = group
        state.changed.connect(lambda change: self._on_change(state, change))
        self._share_fit_scale()

    def peers(self, state: ViewportState) -> list[ViewportState]:
        """The other states of its group."""
        group = self.groups.get(id(state), "")
        return [s for s in self.states if s is not state and self.groups[id(s)] == group]

    def _share_fit_scale(self) -> None:
        for state in self.states:
            state.fit_peers = self.peers(state) if self._enabled else []
        for state in self.states:
            state.changed.emit(Change("resize"))

    def _on_change(self, source: ViewportState, change: Change) -> None:
        if change.kind == "resize" and self._enabled and not self._repeating:
            self._repeating = True  # a peer's size changes the common fit: redraw the others
            try:
                for state in self.peers(source):
                    state.changed.emit(Change("resize"))
            finally:
                self._repeating = False
            return
        if not self._enabled or self._repeating or change.kind not in LINKED_KINDS:
            return
        self._repeating = True
        try:
            for state in self.peers(source):
                state.apply(change)
        finally:
            self._repeating = False
