"""Failed sign-ins, counted per username and per client address in a sliding window.

Password guessing is slowed on both axes: one address trying many names, and many addresses
trying one name. A blocked key is refused before its password is even checked, so a guess
that happens to be right teaches nothing while the block lasts. Kept in memory: a restart
forgets the counts, which costs an attacker a restart of base it cannot cause. Names tried once
and never again would stay forever, so past SWEEP_AT keys the expired ones are dropped.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

SWEEP_AT = 4096  # keys held before expired ones are swept out


class LoginThrottle:
    def __init__(
        self, failures: int = 5, window_s: float = 15 * 60, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.failures = failures
        self.window_s = window_s
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._seen.setdefault(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def wait(self, *keys: str) -> int:
        """0 when a sign-in may be tried, else whole seconds until the oldest counted failure expires."""
        now = self._clock()
        longest = 0.0
        with self._lock:
            for key in keys:
                times = self._recent(key, now)
                if len(times) >= self.failures:
                    longest = max(longest, times[len(times) - self.failures] + self.window_s - now)
                if not times:
                    self._seen.pop(key, None)
        return max(1, math.ceil(longest)) if longest > 0 else 0

    def failed(self, *keys: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._seen) >= SWEEP_AT:
                self._seen = {k: t for k, t in self._seen.items() if t and t[-1] > now - self.window_s}
            for key in keys:
                self._recent(key, now).append(now)

    def keys_held(self) -> int:
        with self._lock:
            return len(self._seen)

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._seen.pop(key, None)
