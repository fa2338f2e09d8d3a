"""A USB webcam through OpenCV, for builds without a Pi camera."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from appliance.errors import CameraError

from .camera_picamera2 import upright
from .closing import Closing


class OpenCVCamera(Closing):
    """Keeps the device open and drains its buffer on capture so the frame is current.

    V4L2 drivers queue several frames; a plain read() would return one taken seconds
    before the press.
    """

    def __init__(self, index: int = 0, width: int = 1280, height: int = 720, rotation: int = 0, drain: int = 4) -> None:
        if rotation % 90:
            raise ValueError(f"camera rotation must be 0, 90, 180 or 270 degrees, not {rotation}")
        self.index, self.width, self.height = index, width, height
        self.rotation = rotation
        self.drain = max(1, drain)
        self._cap: Any = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> None:
        if self._cap is not None:
            return
        import cv2

        cap = cv2.VideoCapture(self.index)
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"no USB camera at index {self.index}: check it is plugged in (see /dev/video*)")
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # honoured by some backends only; draining covers the rest
        self._cap = cap

    def capture(self) -> np.ndarray:
        with self._lock:
            self._start_locked()
            cap = self._cap
            grabbed = all(cap.grab() for _ in range(self.drain))
            ok, frame = cap.retrieve() if grabbed else (False, None)
            if not ok or frame is None or frame.size == 0:
                self._release_locked()
                raise CameraError(f"the USB camera (index {self.index}) returned no frame: check the cable")
        if frame.ndim == 2:
            frame = np.repeat(frame[..., None], 3, axis=2)
        return upright(np.ascontiguousarray(frame[..., :3]), self.rotation)

    def _release_locked(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    def close(self) -> None:
        with self._lock:
            self._release_locked()
