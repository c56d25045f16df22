"""The reading session, Qt-free: what was opened, what is on screen, and what the AI said about it.

Widgets are built from a session, observe its events and command it; they keep no copy of its state.
Data flow one way: files -> studies -> the session -> inference jobs -> results -> layers -> views.
Loaders and the inference worker report to the session on the UI thread; what arrives for a study no
longer on screen, or for another image than the one shown, is dropped here, in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from app.core.hanging import COMPARISON_LAYOUTS, GRIDS, Hanging, hang, reading_flips
from app.core.image import LoadedImage
from app.core.layers import MASK, LayerStack
from app.core.observable import Signal
from app.core.scores import ExamScores, exam_scores
from app.core.study import Series, Study, can_read_side_by_side, priors_of, side_by_side, with_prior
from app.core.viewport_state import ViewportLink, ViewportState
from app.inference.results import InferenceResult
from app.inference.tasks import TASKS
from app.io.errors import LoadProblem


@dataclass(frozen=True)
class InferenceJob:
    """One image of the study on screen, to be read by a model."""

    series_identity: str
    image: LoadedImage
    frame: int


@dataclass(frozen=True)
class Export:
    """A file the reader wrote from this session (view picture, DICOM SEG, SR...)."""

    path: Path
    kind: str
    image_identity: str = ""


class ReadingSession:
    """Owns the studies and problems, the study on screen and its hanging, the viewport states and their
    link, the active image, the layer stack, the results by image identity, the run and the exports.

    Events (app.core.observable.Signal; arguments in brackets):
    reading_started(), studies_changed(), problems_added(list[LoadProblem]), shown_changed(Study | None),
    hanging_changed() (the same images in another grid),
    image_added(series identity, ViewportState), series_failed(series identity, reason),
    active_changed(series identity | None), link_changed(bool), result_added(InferenceResult),
    run_changed(running: bool), drawn(). The layer stack has its own (added, removed, hidden_changed).
    """

    def __init__(self) -> None:
        self.studies: list[Study] = []
        self.problems: list[LoadProblem] = []
        self.reading = False  # files are being scanned into studies
        self.decoding = False  # the study on screen is being decoded
        self.shown: Study | None = None  # one study, or several read side by side
        self.on_screen: tuple[Study, ...] = ()  # the studies that make up `shown`
        self.hanging: Hanging | None = None
        self.compared = False  # the studies on screen are the current one and a prior, read in the grid
        self.grid = GRIDS[0]  # how side-by-side images are arranged (the reader cycles through GRIDS)
        self.comparison_layout = COMPARISON_LAYOUTS[0]  # how a mammogram hangs beside its prior
        self.states: dict[str, ViewportState] = {}  # series identity -> state, as images are decoded
        self.failed: dict[str, str] = {}  # series identity -> why it could not be shown
        self.painted: set[str] = set()  # series identities a view has drawn
        self.link = ViewportLink(enabled=False)
        self.active: str | None = None  # series identity of the active cell
        self.layers = LayerStack()
        self.results: dict[str, InferenceResult] = {}  # image identity -> the latest result
        self.jobs: tuple[InferenceJob, ...] = ()  # the run in progress; empty when none
        self.exports: list[Export] = []
        self.reading_started, self.studies_changed, self.problems_added = Signal(), Signal(), Signal()
        self.shown_changed, self.hanging_changed = Signal(), Signal()
        self.image_added, self.series_failed = Signal(), Signal()
        self.active_changed, self.link_changed, self.result_added = Signal(), Signal(), Signal()
        self.run_changed, self.drawn = Signal(), Signal()

    # ---- opening -------------------------------------------------------------------------------
    def start_reading(self) -> None:
        """New files are being opened: what was open is closed."""
        self.studies, self.problems, self.reading = [], [], True
        self._show(None, ())
        self.reading_started.emit()

    def finish_reading(self, studies: list[Study], problems: list[LoadProblem]) -> None:
        """The scan ended: list its studies and show the first (loose single images side by side)."""
        self.reading = False
        self.studies = list(studies)
        self.add_problems(problems)
        self.studies_changed.emit()
        if self.studies:
            self.show(self.studies if can_read_side_by_side(self.studies) else self.studies[:1])

    def cancel_reading(self) -> None:
        self.reading = self.decoding = False
        self.studies_changed.emit()

    def add_problems(self, problems: list[LoadProblem]) -> list[LoadProblem]:
        """Record files that could not be opened, once each; returns the new ones."""
        known = {(p.path, p.reason) for p in self.problems}
        new = []
        for problem in problems:
            if (problem.path, problem.reason) not in known:
                known.add((problem.path, problem.reason))
                new.append(problem)
        self.problems += new
        if new:
            self.problems_added.emit(new)
        return new

    # ---- what is on screen ---------------------------------------------------------------------
    def show(self, chosen: list[Study], current: Study | None = None) -> None:
        """Show `chosen`: several studies without a mammogram side by side, else `current` (or the first)
        with its own hanging. Showing what is already shown changes nothing."""
        if not chosen:
            return
        if len(chosen) > 1 and not any(study.is_mammography for study in chosen):
            study, members = side_by_side(chosen), tuple(chosen)
        else:
            study = current if current in chosen else chosen[0]
            members = (study,)
        if self.shown is None or study.key != self.shown.key:
            self._show(study, members)

    def step(self, step: int) -> None:
        """The next (or previous) study of the list, alone."""
        if not self.studies:
            return
        index = self.studies.index(self.on_screen[0]) if self.on_screen and self.on_screen[0] in self.studies else -step
        self.show([self.studies[(index + step) % len(self.studies)]])

    def next_grid(self) -> str:
        """Side-by-side images: square grid, one row, one column, and round again; a mammogram beside its
        prior: the other comparison layout. The images, their states and results stay."""
        if self.shown is not None and self.shown.prior is not None:
            layouts = COMPARISON_LAYOUTS
            self.comparison_layout = layouts[(layouts.index(self.comparison_layout) + 1) % len(layouts)]
            chosen = self.comparison_layout
        else:
            self.grid = chosen = GRIDS[(GRIDS.index(self.grid) + 1) % len(GRIDS)]
        if self.shown is not None and (self.shown.is_side_by_side or self.shown.prior is not None):
            self.hanging = self._hang(self.shown)
            self.painted.clear()
            self.hanging_changed.emit()
        return chosen

    # ---- priors --------------------------------------------------------------------------------
    @property
    def current(self) -> Study | None:
        """The study being read (the first of those on screen; a prior is not it)."""
        return self.on_screen[0] if self.on_screen else None

    def priors(self) -> list[Study]:
        """The current study's priors among the open studies, newest first (same patient, shared modality)."""
        return priors_of(self.current, self.studies) if self.current is not None else []

    def add_studies(self, studies: list[Study]) -> None:
        """Studies found later (e.g. a prior retrieved from the PACS) join the list; what is shown stays."""
        known = {study.key for study in self.studies}
        new = [study for study in studies if study.key not in known]
        if new:
            self.studies += new
            self.studies_changed.emit()

    def compare(self, prior: Study) -> None:
        """Read the current study beside `prior`: a mammogram in a comparison hanging, other studies in the
        side-by-side grid. Current and prior are read, linked and run through the AI like one study."""
        current = self.current
        if current is None or prior.key == current.key:
            return
        if current.is_mammography and prior.is_mammography:
            self._show(with_prior(current, prior), (current, prior))
        else:
            self._show(side_by_side([current, prior]), (current, prior), compared=True)

    def _show(self, study: Study | None, members: tuple[Study, ...], compared: bool = False) -> None:
        self.set_run(())
        self.shown, self.on_screen, self.compared = study, members, compared
        self.hanging = None if study is None else self._hang(study)
        self.decoding = study is not None
        self.states, self.failed, self.painted = {}, {}, set()
        self.link = ViewportLink(enabled=self.hanging is not None and self.hanging.is_four_view)
        self.results.clear()
        self.layers.clear()
        cells = self.cells()
        self.active = cells[0] if cells else None
        self.shown_changed.emit(study)
        self.active_changed.emit(self.active)

    def _hang(self, study: Study) -> Hanging:
        if study.prior is not None:
            return hang(study, self.comparison_layout)
        hanging = hang(study, self.grid if study.is_side_by_side else "")
        if self.compared:  # a study beside its prior in the grid: each cell says whose it is and the date
            whose = {series.identity: f"{who} {member.date}".rstrip()
                     for who, member in zip(("current", "prior"), self.on_screen) for series in member.series}
            hanging = replace(hanging, cells=tuple(replace(cell, label=f"{cell.label}\n{whose[cell.series.identity]}")
                                                   if cell.series is not None else cell for cell in hanging.cells))
        return hanging

    def cells(self) -> list[str]:
        """Series identities of the hanging's occupied cells, in reading order."""
        if self.hanging is None:
            return []
        return [cell.series.identity for cell in self.hanging.cells if cell.series is not None]

    def _is_current(self, study_key: str, series: Series) -> bool:
        return self.shown is not None and study_key == self.shown.key and series.identity in self.cells()

    def add_image(self, study_key: str, series: Series, image: LoadedImage) -> ViewportState | None:
        """A decoded image of the study on screen gets its viewport state (hanging flips, cell anchor)."""
        if not self._is_current(study_key, series):
            return None
        cell = next(c for c in self.hanging.cells if c.series is not None and c.series.identity == series.identity)
        flip_h, flip_v = reading_flips(image.info, image.frame(0))
        state = ViewportState(image, flip_h=flip_h, flip_v=flip_v, anchor=cell.anchor)
        self.states[series.identity] = state
        self.link.add(state, group=cell.link_group)
        self.image_added.emit(series.identity, state)
        return state

    def fail_series(self, study_key: str, series: Series, reason: str) -> None:
        if self._is_current(study_key, series):
            self.failed[series.identity] = reason
            self.series_failed.emit(series.identity, reason)
            self._check_drawn()

    def finish_decoding(self, study_key: str) -> None:
        if self.shown is not None and study_key == self.shown.key:
            self.decoding = False
            self._check_drawn()

    def set_active(self, series_identity: str | None) -> None:
        if series_identity != self.active:
            self.active = series_identity
            self.active_changed.emit(series_identity)

    def set_link(self, enabled: bool) -> None:
        if enabled != self.link.enabled:
            self.link.enabled = enabled
            self.link_changed.emit(enabled)

    @property
    def active_state(self) -> ViewportState | None:
        return self.states.get(self.active) if self.active else None

    def target_states(self) -> list[ViewportState]:
        """The states a reading action applies to: the active one (links repeat it elsewhere)."""
        state = self.active_state or next((self.states[s] for s in self.cells() if s in self.states), None)
        return [state] if state is not None else []

    def image_identity(self, series_identity: str) -> str | None:
        state = self.states.get(series_identity)
        return state.image.info.identity if state is not None else None

    # ---- drawn ---------------------------------------------------------------------------------
    def mark_painted(self, series_identity: str) -> None:
        """A view drew this cell's image for the first time."""
        if series_identity in self.states and series_identity not in self.painted:
            self.painted.add(series_identity)
            self._check_drawn()

    @property
    def is_fully_painted(self) -> bool:
        """Every image of the hanging that could be opened is drawn (and the hanging holds at least one)."""
        cells = set(self.cells())
        return bool(cells) and cells - set(self.failed) <= self.painted

    @property
    def is_drawn(self) -> bool:
        """Nothing is being read, decoded or inferred, and what should be on screen is (for screenshots)."""
        if self.reading or self.decoding or self.jobs:
            return False
        return self.shown is None or self.is_fully_painted

    def _check_drawn(self) -> None:
        if self.is_drawn:
            self.drawn.emit()

    # ---- inference -----------------------------------------------------------------------------
    def inference_jobs(self) -> tuple[InferenceJob, ...]:
        """The decoded images of the study on screen, in hanging order, each on its current frame."""
        return tuple(InferenceJob(s, self.states[s].image, self.states[s].frame) for s in self.cells()
                     if s in self.states)

    def set_run(self, jobs: tuple[InferenceJob, ...]) -> None:
        """The run in progress (empty: none). A new study on screen ends it."""
        was_running = bool(self.jobs)
        self.jobs = tuple(jobs)
        if was_running or self.jobs:
            self.run_changed.emit(bool(self.jobs))
        if was_running and not self.jobs:
            self._check_drawn()

    def add_result(self, study_key: str, series_identity: str, result: InferenceResult) -> bool:
        """Keep a result and make its layers, if it was computed for the image shown in that cell now."""
        state = self.states.get(series_identity)
        if self.shown is None or study_key != self.shown.key or state is None:
            return False
        if state.image.info.identity != result.image_identity:
            return False
        self.results[result.image_identity] = result
        self.layers.replace(result.image_identity, result.model_key, TASKS[result.task].layers(result))
        self.result_added.emit(result)
        return True

    def result_for(self, series_identity: str | None) -> InferenceResult | None:
        identity = self.image_identity(series_identity) if series_identity else None
        return self.as_shown(self.results.get(identity)) if identity else None

    def mask_threshold(self, result: InferenceResult) -> float:
        """The threshold the reader set on the result's mask layer (the model's default otherwise)."""
        for layer in self.layers.for_image(result.image_identity):
            if layer.kind == MASK and layer.source == result.mask_source:
                return layer.threshold
        return result.threshold

    def as_shown(self, result: InferenceResult | None) -> InferenceResult | None:
        """The result with the mask threshold the reader set: one threshold for the layer, the panel
        text and the DICOM SEG export."""
        if result is None or result.mask is None:
            return result
        return replace(result, threshold=self.mask_threshold(result))

    def exam_scores(self, study: Study | None = None) -> ExamScores | None:
        """Per view, per breast and per exam scores of the mammogram views of `study` (the current one
        unless told: a prior's are asked for separately) that have a result."""
        study = study or self.current
        members = {series.identity for series in study.series} if study is not None else set()
        per_view, classes = {}, ()
        for series_identity in (s for s in self.cells() if s in members):
            state = self.states.get(series_identity)
            result = self.results.get(state.image.info.identity) if state else None
            if result is not None and result.probabilities is not None and state.image.info.is_mammogram_view:
                per_view[state.image.info.label] = np.asarray(result.probabilities)
                classes = result.classes
        return exam_scores(classes, per_view) if per_view else None

    def patch_picture(self, series_identity: str | None) -> np.ndarray | None:
        """The patch the local network read on this cell's image, as RGB, windowed as it is shown."""
        state = self.states.get(series_identity) if series_identity else None
        result = self.results.get(state.image.info.identity) if state else None
        if result is None or not result.patches:
            return None
        from app.inference.visualize import patch_rgb

        return patch_rgb(state.image, result.patches[0], state.frame, state)

    # ---- exports -------------------------------------------------------------------------------
    def record_export(self, path: Path, kind: str, image_identity: str = "") -> None:
        self.exports.append(Export(Path(path), kind, image_identity))
