"""Keyboard shortcuts: one table, used to build the actions and the Help listing."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shortcut:
    action: str
    keys: str
    text: str


SHORTCUTS = (
    Shortcut("open_files", "Ctrl+O", "Open files"),
    Shortcut("open_folder", "Ctrl+Shift+O", "Open a folder"),
    Shortcut("fit", "F", "Fit images to their viewports"),
    Shortcut("one_to_one", "Z", "Show at 1:1 (one image pixel per screen pixel)"),
    Shortcut("invert", "I", "Invert grey scale"),
    Shortcut("flip_horizontal", "Shift+H", "Mirror the active view left-right (orientation markers follow)"),
    Shortcut("flip_vertical", "Shift+V", "Mirror the active view top-bottom (orientation markers follow)"),
    Shortcut("link", "L", "Link zoom, pan and window/level across viewports"),
    Shortcut("grid", "G", "Arrange side-by-side images (square grid, one row, one column) or a comparison "
                          "(each view over its prior, or the prior's views beside the current's)"),
    Shortcut("compare_prior", "P", "Read the study beside the patient's prior (again: the next older one)"),
    Shortcut("reset", "R", "Reset window/level, zoom and pan"),
    Shortcut("next_preset", "W", "Next window/level preset"),
    Shortcut("next_frame", "Down", "Next frame of a cine loop or series"),
    Shortcut("previous_frame", "Up", "Previous frame"),
    Shortcut("next_study", "PgDown", "Next study in the list"),
    Shortcut("previous_study", "PgUp", "Previous study in the list"),
    Shortcut("patient_name", "Ctrl+Shift+N", "Show or hide the patient name"),
    Shortcut("run_ai", "Ctrl+R", "Run the AI model on the open study"),
    Shortcut("hide_overlays", "H", "Hide or show all AI overlays"),
    Shortcut("export_view", "Ctrl+E", "Export the active view with its overlays as PNG"),
    Shortcut("export_seg", "Ctrl+Shift+E", "Export the active image's mask as DICOM SEG"),
    Shortcut("pacs", "Ctrl+Shift+P", "PACS: search, retrieve, receive studies and connection settings"),
    Shortcut("send_results", "Ctrl+Shift+S", "Send the study's AI results to the PACS (SR, SEG, view capture)"),
    Shortcut("cancel", "Esc", "Cancel loading"),
    Shortcut("help", "F1", "Keyboard and mouse help"),
    Shortcut("quit", "Ctrl+Q", "Quit"),
)

MOUSE_HELP = (
    ("Left drag", "Pan"),
    ("Right drag", "Window/level: right-left = width, up-down = level"),
    ("Wheel", "Zoom about the pointer"),
    ("Double-click", "Show one viewport alone / back to the hanging"),
    ("Drop files or folders", "Open them"),
)


def keys_for(action: str) -> str:
    return next(s.keys for s in SHORTCUTS if s.action == action)
