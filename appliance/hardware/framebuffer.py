"""A Linux framebuffer (/dev/fbN) as the appliance's display: no X, no SDL, just numpy.

Small SPI screens (fbtft, 16 bpp RGB565) and HDMI/DSI consoles (32 bpp XRGB8888) both
appear as /dev/fbN; their geometry is read from sysfs.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np

from appliance.errors import DisplayError

from .closing import Closing

log = logging.getLogger(__name__)


def fit_frame(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Any image array as RGB uint8 of exactly (height, width, 3), letterboxed to keep its shape.

    A frame of the wrong size is a caller's slip that must not blank the screen or crash
    the daemon, so it is scaled rather than refused.
    """
    a = np.asarray(frame)
    if a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.size == 0 or a.shape[2] not in (1, 3, 4):
        log.warning("cannot show a frame of shape %s; showing black", a.shape)
        return np.zeros((height, width, 3), np.uint8)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.shape[2] == 4:
        a = a[..., :3]
    fh, fw = a.shape[:2]
    if (fh, fw) == (height, width):
        return np.ascontiguousarray(a)
    scale = min(width / fw, height / fh)
    nw, nh = max(1, min(width, round(fw * scale))), max(1, min(height, round(fh * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(np.ascontiguousarray(a), (nw, nh), interpolation=interpolation)
    out = np.zeros((height, width, 3), np.uint8)
    top, left = (height - nh) // 2, (width - nw) // 2
    out[top : top + nh, left : left + nw] = resized
    return out


def _read_sysfs(folder: Path, name: str) -> str:
    path = folder / name
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise DisplayError(
            f"cannot read {path} ({exc.strerror or exc}): give the display's width, height and bits per pixel "
            "in the configuration instead"
        ) from None


class FramebufferDisplay(Closing):
    """Writes whole frames to a framebuffer device with one pwrite per frame.

    Supports 16 bpp (RGB565, little-endian) and 32 bpp (XRGB8888: bytes B, G, R, X) and
    honours the stride, which drivers may pad beyond width x bytes per pixel.
    """

    def __init__(
        self,
        device: str | os.PathLike[str] = "/dev/fb0",
        width: int | None = None,
        height: int | None = None,
        bits_per_pixel: int | None = None,
        sysfs_root: Path = Path("/sys/class/graphics"),
        stride: int | None = None,
    ) -> None:
        self.device = Path(device)
        if not self.device.exists():
            raise DisplayError(
                f"display device {self.device} does not exist: check the screen's driver is loaded "
                "(dtoverlay in /boot/firmware/config.txt) or run with --simulate"
            )
        info = Path(sysfs_root) / self.device.name
        if width is None or height is None:
            size = _read_sysfs(info, "virtual_size")
            try:
                w, h = (int(v) for v in size.split(","))
            except ValueError:
                raise DisplayError(f"{info / 'virtual_size'}: expected 'WIDTH,HEIGHT', found {size!r}") from None
            width, height = width or w, height or h
        if bits_per_pixel is None:
            text = _read_sysfs(info, "bits_per_pixel")
            try:
                bits_per_pixel = int(text)
            except ValueError:
                raise DisplayError(f"{info / 'bits_per_pixel'}: expected a number, found {text!r}") from None
        if bits_per_pixel not in (16, 32):
            raise DisplayError(
                f"{self.device} uses {bits_per_pixel} bits per pixel; only 16 (RGB565) and 32 (XRGB8888) are "
                "supported: set framebuffer_depth=16 or 32 in /boot/firmware/config.txt"
            )
        self.width, self.height, self.bits_per_pixel = int(width), int(height), bits_per_pixel
        self.bytes_per_pixel = bits_per_pixel // 8
        if stride is None:
            try:
                stride = int(_read_sysfs(info, "stride"))
            except (DisplayError, ValueError):
                stride = self.width * self.bytes_per_pixel
        if stride < self.width * self.bytes_per_pixel:
            raise DisplayError(f"{self.device}: stride {stride} is shorter than one row of {self.width} pixels")
        self.stride = stride
        self._buf = np.zeros((self.height, self.stride), np.uint8)
        try:
            self._fd: int | None = os.open(self.device, os.O_RDWR | os.O_CLOEXEC)
        except PermissionError:
            raise DisplayError(
                f"no permission to write {self.device}: add the service user to the 'video' group"
            ) from None
        except OSError as exc:
            raise DisplayError(f"cannot open {self.device}: {exc.strerror or exc}") from None

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def encode(self, frame: np.ndarray) -> np.ndarray:
        """The frame as the device's bytes: (height, stride) uint8, padding left at zero."""
        rgb = fit_frame(frame, self.width, self.height)
        w = self.width
        if self.bits_per_pixel == 16:
            r = rgb[..., 0].astype(np.uint16)
            g = rgb[..., 1].astype(np.uint16)
            b = rgb[..., 2].astype(np.uint16)
            packed = ((r & 0xF8) << 8) | ((g & 0xFC) << 3) | (b >> 3)
            self._buf[:, : w * 2] = packed.astype("<u2").view(np.uint8).reshape(self.height, w * 2)
        else:
            bgrx = self._buf[:, : w * 4].reshape(self.height, w, 4)
            bgrx[..., 0] = rgb[..., 2]
            bgrx[..., 1] = rgb[..., 1]
            bgrx[..., 2] = rgb[..., 0]
            bgrx[..., 3] = 0xFF  # opaque, for drivers that read X as alpha
        return self._buf

    def show(self, frame: np.ndarray) -> None:
        if self._fd is None:
            raise DisplayError(f"{self.device} is closed")
        data = memoryview(self.encode(frame)).cast("B")
        done = 0
        try:
            while done < len(data):
                n = os.pwrite(self._fd, data[done:], done)
                if n <= 0:
                    raise DisplayError(f"{self.device} accepted only {done} of {len(data)} bytes")
                done += n
        except OSError as exc:
            raise DisplayError(f"writing to {self.device} failed: {exc.strerror or exc}") from None

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
