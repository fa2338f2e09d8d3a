"""LEDs that only remember what they were told: simulation mode and tests read the timeline."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..led_codes import LED_CODES
from ..ports import LedPattern
from .closing import Closing

log = logging.getLogger("appliance.leds")


def describe(pattern: LedPattern) -> str:
    """One short line per pattern, e.g. "LED: green steady (ready)": simulated LEDs cannot be looked at."""
    code = LED_CODES.get(LedPattern(pattern))
    looks = "off" if code is None or code.colour == "off" else code.short().lower()
    return f"LED: {looks} ({LedPattern(pattern).value})"


def log_change(pattern: LedPattern) -> None:
    """The default ``on_change``: an INFO line, which `appliance run --simulate` shows in its log."""
    log.info("%s", describe(pattern))


class SimulatedLeds(Closing):
    """Keeps ``current`` and a ``timeline`` of (time.monotonic(), pattern); safe from any thread.

    ``on_change`` is told each new pattern; by default it is logged at INFO (:func:`log_change`).
    """

    def __init__(self, on_change: Callable[[LedPattern], None] | None = log_change) -> None:
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
