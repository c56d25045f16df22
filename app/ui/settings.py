"""Persistent user settings (QSettings): every key is named once here."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6 import QtCore

RECENT_LIMIT = 10


class AppSettings:
    GEOMETRY = "window/geometry"
    WINDOW_STATE = "window/state"
    RECENT = "studies/recent"
    SHOW_PATIENT_NAME = "display/show_patient_name"
    AI_AUTO_RUN = "ai/run_on_open"
    AI_DEVICE = "ai/device"

    def __init__(self, settings: QtCore.QSettings | None = None) -> None:
        self._settings = settings or QtCore.QSettings("RadLens", "RadLens")

    def geometry(self) -> QtCore.QByteArray | None:
        return self._settings.value(self.GEOMETRY)

    def window_state(self) -> QtCore.QByteArray | None:
        return self._settings.value(self.WINDOW_STATE)

    def save_window(self, geometry: QtCore.QByteArray, state: QtCore.QByteArray) -> None:
        self._settings.setValue(self.GEOMETRY, geometry)
        self._settings.setValue(self.WINDOW_STATE, state)

    def recent(self) -> list[list[Path]]:
        try:
            entries = json.loads(self._settings.value(self.RECENT, "[]") or "[]")
        except (TypeError, json.JSONDecodeError):
            return []
        return [[Path(p) for p in entry] for entry in entries if isinstance(entry, list)]

    def add_recent(self, paths: list[Path]) -> None:
        entry = [str(Path(p).resolve()) for p in paths]
        entries = [e for e in (list(map(str, r)) for r in self.recent()) if e != entry]
        self._settings.setValue(self.RECENT, json.dumps([entry, *entries][:RECENT_LIMIT]))

    def show_patient_name(self) -> bool:
        return str(self._settings.value(self.SHOW_PATIENT_NAME, "false")).lower() == "true"

    def set_show_patient_name(self, show: bool) -> None:
        self._settings.setValue(self.SHOW_PATIENT_NAME, "true" if show else "false")

    def ai_auto_run(self) -> bool:
        return str(self._settings.value(self.AI_AUTO_RUN, "false")).lower() == "true"

    def set_ai_auto_run(self, on: bool) -> None:
        self._settings.setValue(self.AI_AUTO_RUN, "true" if on else "false")

    def ai_device(self) -> str:
        return str(self._settings.value(self.AI_DEVICE, "auto"))

    def set_ai_device(self, device: str) -> None:
        self._settings.setValue(self.AI_DEVICE, device)
