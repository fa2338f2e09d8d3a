"""LEDs that only remember what they were told: simulation mode and tests read the timeline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..ports import LedPattern
from .closing import Closing


class SimulatedLeds(Closing):
    """Keeps ``current`` and a ``timeline`` of (time.monotonic(), pattern); safe from any thread.

    ``on_change`` (optional) is told each new pattern, e.g. to print it in a terminal.
    """

    def __init__(self, on_change: Callable[[LedPattern], None] | None = None) -> None:
        self.current = LedPattern.OFF
        self.timeline: list[tuple[float, LedPattern]] = []
        self.closed = False
        self._on_change = on_change
        self._lock = threading.Lock()

    def show(self, pattern: LedPattern) -> None:
        pattern = LedPattern(pattern)
        with self._lock:
            if self.closed:
                return
            changed = pattern != self.current
            self.current = pattern
            self.timeline.append((time.monotonic(), pattern))
        if changed and self._on_change is not None:
            self._on_change(pattern)

    def patterns(self) -> list[LedPattern]:
        """The patterns shown so far, in order (a copy, for assertions)."""
        with self._lock:
            return [p for _, p in self.timeline]

    def close(self) -> None:
        with self._lock:
            if not self.closed:
                self.closed = True
                self.current = LedPattern.OFF
                self.timeline.append((time.monotonic(), LedPattern.OFF))
