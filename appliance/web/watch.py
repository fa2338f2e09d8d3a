"""Observers between the daemon and its display and LEDs: the page reads what they were last given."""

from __future__ import annotations

import threading

import cv2
import numpy as np

from ..ports import Display, LedPattern, Leds


class WatchedDisplay:
    """Passes frames to the real display and keeps the latest (display-sized, never a camera frame).

    The loop only stores a reference; PNG encoding happens on the page's thread, once per frame.
    """

    def __init__(self, inner: Display) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self._frame: np.ndarray | None = None
        self._seq = 0
        self._png: tuple[int, bytes] | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self.inner.size

    @property
    def seq(self) -> int:
        """How many frames have been shown: the page reloads the image when it changes."""
        return self._seq

    def show(self, frame: np.ndarray) -> None:
        self.inner.show(frame)
        with self._lock:
            self._frame, self._seq = frame, self._seq + 1

    def png(self) -> tuple[int, bytes] | None:
        """(frame number, PNG bytes) of the latest frame, or None before the first."""
        with self._lock:
            frame, seq, cached = self._frame, self._seq, self._png
        if frame is None:
            return None
        if cached is not None and cached[0] == seq:
            return cached
        rgb = np.ascontiguousarray(frame[..., :3], dtype=np.uint8)
        ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            return None
        encoded = (seq, data.tobytes())
        with self._lock:
            self._png = encoded
        return encoded

    def __getattr__(self, name: str) -> object:  # e.g. a simulated display's latest_path
        return getattr(self.inner, name)

    def close(self) -> None:
        self.inner.close()


class WatchedLeds:
    """Passes patterns to the real LEDs and remembers the current one."""

    def __init__(self, inner: Leds) -> None:
        self.inner = inner
        self.current = LedPattern.OFF

    def show(self, pattern: LedPattern) -> None:
        self.inner.show(pattern)
        self.current = LedPattern(pattern)

    def __getattr__(self, name: str) -> object:  # e.g. simulated LEDs' timeline
        return getattr(self.inner, name)

    def close(self) -> None:
        self.inner.close()
        self.current = LedPattern.OFF
