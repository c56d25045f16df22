"""Progress of long commands (predict, training, guards) on stderr: tqdm's bar on a terminal, plain lines in a log.

On a terminal the bar redraws in place (files done, rate, time left, failures). When stderr is a file, a
pipe or a scheduler's log, a carriage-return bar would pile hundreds of updates into one line, so a plain
line is written every `PLAIN_EVERY_PERCENT` percent or every `PLAIN_EVERY_SECONDS` seconds, whichever
comes first, and at the end.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm

PLAIN_EVERY_PERCENT = 5
PLAIN_EVERY_SECONDS = 60.0


class ProgressReport:
    """`update(done, failed)` as work finishes; `initial` items were done by an earlier run (resumed),
    so rate and time left count only this run's work."""

    def __init__(self, total: int, *, what: str = "images", initial: int = 0, stream: TextIO | None = None,
                 clock=time.monotonic) -> None:
        self.total, self.what, self.initial = total, what, initial
        self.stream = stream or sys.stderr
        self.clock = clock
        self.done, self.failed = initial, 0
        self.started = clock()
        self._last_line = (self.started, initial)
        self._bar = None
        if _is_terminal(self.stream):
            self._bar = tqdm(total=total, initial=initial, unit=what[:-1] if what.endswith("s") else what,
                             file=self.stream, dynamic_ncols=True, leave=True)

    def update(self, done: int, failed: int | None = None) -> None:
        self.done = done
        if failed is not None:
            self.failed = failed
        if self._bar is not None:
            if self.failed:
                self._bar.set_postfix_str(f"{self.failed} failed", refresh=False)
            self._bar.update(done - self._bar.n)
        elif self._plain_line_due():
            self._plain_line()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._last_line[1] != self.done or self.done == self.initial:
            self._plain_line()

    def line(self) -> str:
        """e.g. 'images: 146/394 (37%), 4.8 images/s, 0:52 left, 3 failed'."""
        elapsed = self.clock() - self.started
        rate = (self.done - self.initial) / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.what}: {self.done}/{self.total} ({100 * self.done / max(self.total, 1):.0f}%)"]
        if self.initial:
            parts.append(f"{self.initial} from the earlier run")
        parts.append(f"{rate:.2f} {self.what}/s" if rate else f"0 {self.what}/s")
        if rate and self.done < self.total:
            parts.append(f"{tqdm.format_interval((self.total - self.done) / rate)} left")
        elif self.done >= self.total:
            parts.append(f"{tqdm.format_interval(elapsed)} elapsed")
        parts.append(f"{self.failed} failed")
        return ", ".join(parts)

    def _plain_line_due(self) -> bool:
        when, done = self._last_line
        step = max(1, self.total * PLAIN_EVERY_PERCENT // 100)
        return self.done >= self.total or self.done - done >= step or self.clock() - when >= PLAIN_EVERY_SECONDS

    def _plain_line(self) -> None:
        self.stream.write(self.line() + "\n")
        self.stream.flush()
        self._last_line = (self.clock(), self.done)

    def __enter__(self) -> ProgressReport:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


_current: ProgressReport | None = None


def terminal_progress(done: int, total: int) -> None:
    """The (done, total) callback long commands take: a new report starts when `total` changes or the
    count goes back, and closes when done reaches total."""
    global _current
    if _current is None or _current.total != total or done < _current.done:
        if _current is not None:
            _current.close()
        _current = ProgressReport(total, what="items")
    _current.update(done)
    if done >= total:
        _current.close()
        _current = None
