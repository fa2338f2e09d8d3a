"""The Raspberry Pi camera (libcamera) through picamera2, kept streaming between presses."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from appliance.errors import CameraError

from .closing import Closing

log = logging.getLogger(__name__)

# libcamera's AfModeEnum values (Manual=0, Auto=1, Continuous=2); plain ints avoid importing libcamera.
AF_MODE_CONTINUOUS = 2


def upright(frame: np.ndarray, rotation: int) -> np.ndarray:
    """Undo how the camera is mounted (degrees clockwise the image must turn)."""
    turns = (rotation // 90) % 4
    if turns == 0:
        return frame
    return np.ascontiguousarray(np.rot90(frame, k=-turns))


class Picamera2Camera(Closing):
    """Streams continuously (a mode switch costs 500-700 ms) and hands out the newest frame.

    The main stream is ``RGB888``, which picamera2/libcamera lay out as B, G, R bytes per
    pixel: already the BGR order the rest of the appliance uses, so no conversion is made.
    ``focus`` picks continuous autofocus while streaming (no delay on a press) or one
    autofocus cycle per capture (sharper for a leaf that moves, slower); both apply only
    when the camera reports the ``AfMode`` control.
    """

    def __init__(
        self,
        width: int = 2304,
        height: int = 1296,
        autofocus: bool = True,
        factory: Callable[[], Any] | None = None,
        focus: Literal["continuous", "cycle"] = "continuous",
        rotation: int = 0,
        capture_timeout_s: float = 5.0,
    ) -> None:
        if rotation % 90:
            raise ValueError(f"camera rotation must be 0, 90, 180 or 270 degrees, not {rotation}")
        self.width, self.height = width, height
        self.autofocus = autofocus
        self.focus = focus
        self.rotation = rotation
        self.capture_timeout_s = capture_timeout_s
        self._factory = factory
        self._cam: Any = None
        self._has_af = False
        self._lock = threading.Lock()

    def _make(self) -> Any:
        factory = self._factory
        if factory is None:
            try:
                from picamera2 import Picamera2
            except ImportError as exc:
                raise CameraError(
                    f"picamera2 is not available ({exc}); install python3-picamera2 with apt and create "
                    "the venv with --system-site-packages, or run with --simulate"
                ) from None
            factory = Picamera2
        try:
            return factory()
        except IndexError:
            raise CameraError(
                "no camera found: check the ribbon cable is seated at both ends and the camera is enabled"
            ) from None
        except Exception as exc:
            raise CameraError(f"cannot open the camera ({exc}); is another program using it?") from None

    def start(self) -> None:
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> None:
        if self._cam is not None:
            return
        cam = self._make()
        try:
            config = cam.create_still_configuration(
                main={"size": (self.width, self.height), "format": "RGB888"},
                buffer_count=2,
                queue=False,  # a capture waits for a frame taken after the press, never a stale one
            )
            cam.configure(config)
            cam.start()
            self._has_af = self.autofocus and "AfMode" in (getattr(cam, "camera_controls", None) or {})
            if self._has_af and self.focus == "continuous":
                cam.set_controls({"AfMode": AF_MODE_CONTINUOUS})
        except Exception as exc:
            _quietly_close(cam)
            raise CameraError(f"camera failed to start ({exc})") from None
        self._cam = cam
        log.info("camera streaming %dx%d, autofocus %s", self.width, self.height, self._has_af and self.focus)

    def capture(self) -> np.ndarray:
        with self._lock:
            self._start_locked()  # recovers after a failure once the camera is back
            cam = self._cam
            try:
                if self._has_af and self.focus == "cycle" and not cam.autofocus_cycle():
                    log.warning("autofocus did not converge; taking the photo anyway")
                job = cam.capture_array("main", wait=False)
                frame = cam.wait(job, timeout=self.capture_timeout_s)
            except Exception as exc:
                self._drop_locked()
                if isinstance(exc, TimeoutError):
                    raise CameraError(
                        f"the camera sent no frame within {self.capture_timeout_s:g} s: check the cable"
                    ) from None
                raise CameraError(f"camera stopped working ({exc}): check the cable") from None
        return _as_bgr(frame, self.rotation)

    def _drop_locked(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            _quietly_close(cam)

    def close(self) -> None:
        with self._lock:
            self._drop_locked()


def _as_bgr(frame: Any, rotation: int) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.size == 0:
        raise CameraError("the camera returned an empty frame")
    if frame.ndim != 3 or frame.shape[2] not in (3, 4) or frame.dtype != np.uint8:
        raise CameraError(f"the camera returned an unexpected frame ({frame.shape}, {frame.dtype})")
    return upright(np.ascontiguousarray(frame[..., :3]), rotation)


def _quietly_close(cam: Any) -> None:
    for name in ("stop", "close"):
        try:
            getattr(cam, name)()
        except Exception as exc:  # already broken; closing must not hide the original fault
            log.debug("camera %s failed: %s", name, exc)
