"""A minimal observer: a `Signal` that calls its slots, and can be blocked while a view writes back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class Signal:
    """Calls every connected slot with the emitted arguments, in connection order."""

    def __init__(self) -> None:
        self._slots: list[Callable[..., Any]] = []
        self._blocked = 0

    def connect(self, slot: Callable[..., Any]) -> None:
        if slot not in self._slots:
            self._slots.append(slot)

    def disconnect(self, slot: Callable[..., Any]) -> None:
        if slot in self._slots:
            self._slots.remove(slot)

    def emit(self, *args: Any) -> None:
        if self._blocked:
            return
        for slot in list(self._slots):
            slot(*args)

    @contextmanager
    def blocker(self) -> Iterator[None]:
        """Suppress emissions inside the block (used when a view writes a value it was just told)."""
        self._blocked += 1
        try:
            yield
        finally:
            self._blocked -= 1
