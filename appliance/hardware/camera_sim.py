"""A camera that replays photo files from a folder: simulation mode and tests use it."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from appliance.errors import CameraError

from ..errors import ImageError
from ..vision.decode import DECODE_BUDGET_S, read_image
from .closing import Closing

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


class SimulatedCamera(Closing):
    """Each capture returns the next photo in ``folder`` (sorted by name), decoded like a real one.

    ``set_connected(False)`` makes it behave like an unplugged camera so the daemon's
    fault and recovery paths can be exercised without hardware.
    """

    def __init__(
        self,
        folder: Path,
        loop: bool = True,
        frame_size: tuple[int, int] | None = None,
        decode_budget_s: float = DECODE_BUDGET_S,
    ) -> None:
        self.folder = Path(folder)
        self.loop = loop
        self.frame_size = frame_size  # (w, h): frames as large as a real camera's, the photo scaled to cover it
        self.decode_budget_s = decode_budget_s  # a slow photo is a camera error, never a stalled loop
        self.last_path: Path | None = None
        self._files: list[Path] = []
        self._next = 0
        self._started = False
        self._connected = True
        self._lock = threading.Lock()

    def set_connected(self, connected: bool) -> None:
        with self._lock:
            self._connected = connected
            if not connected:
                self._started = False

    def _scan(self) -> list[Path]:
        if not self.folder.is_dir():
            raise CameraError(
                f"simulated camera: photo folder {self.folder} does not exist; create it and put photos in it"
            )
        files = sorted(
            (p for p in self.folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file()),
            key=lambda p: p.name,
        )
        if not files:
            raise CameraError(f"simulated camera: no photos in {self.folder}; put .jpg, .jpeg or .png files there")
        return files

    def start(self) -> None:
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> None:
        if not self._connected:
            raise CameraError("camera not connected (simulated unplug): check the camera cable")
        self._files = self._scan()
        self._next = min(self._next, len(self._files))
        self._started = True

    def capture(self) -> np.ndarray:
        with self._lock:
            if not self._started:
                self._start_locked()
            if not self._connected:
                raise CameraError("camera not connected (simulated unplug): check the camera cable")
            if self._next >= len(self._files):
                if not self.loop:
                    raise CameraError(
                        f"simulated camera: no more photos in {self.folder} (all {len(self._files)} used)"
                    )
                self._files = self._scan()  # pick up photos added while running
                self._next = 0
            path = self._files[self._next]
            self._next += 1  # a bad file is skipped on the next capture
            self.last_path = path
        try:
            image = read_image(path, self.decode_budget_s)
        except ImageError as exc:
            raise CameraError(f"simulated camera: cannot use {path.name}: {exc}") from None
        return image if self.frame_size is None else cover(image, *self.frame_size)

    def close(self) -> None:
        with self._lock:
            self._started = False


def cover(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """The photo scaled to cover width x height and centre-cropped to it (no stretching), as a camera frames it."""
    h, w = image.shape[:2]
    scale = max(width / w, height / h)
    scaled = cv2.resize(
        image, (max(width, round(w * scale)), max(height, round(h * scale))), interpolation=cv2.INTER_LINEAR
    )
    top, left = (scaled.shape[0] - height) // 2, (scaled.shape[1] - width) // 2
    return np.ascontiguousarray(scaled[top : top + height, left : left + width])
