"""Photo bytes to pixels, within a budget of bytes, formats, decoded pixels and time.

A photo can come from anyone: a file named on the command line, the simulated camera's folder,
a stick. Each limit below was set after a file that got past it: a 7000x7000 Radiance .hdr took
793 MB, 49-MP JPEG/PNG/WebP about 370 MB, a progressive JPEG of 20,000 scans 25 s (and blocked
the button loop as long). Training and evaluation decode through here too, so what the model
learnt from is what the device sees.
"""

from __future__ import annotations

import io
import os
import queue
import threading
import time
from pathlib import Path

import numpy as np

MAX_FILE_BYTES = 40 * 1024 * 1024
# The largest frame a Pi camera (HQ: 4056x3040) or a common phone (4032x3024) writes is 12.3 MP.
MAX_DECODED_PIXELS = 13_000_000
# A JPEG is decoded at 1/2, 1/4 or 1/8 of its size (libjpeg scales while decoding, at a fraction
# of the memory) until it fits MAX_DECODED_PIXELS, so a 50-MP phone photo still works.
MAX_JPEG_PIXELS = 50_000_000
MAX_JPEG_SCANS = 64  # progressive JPEGs from cameras and phones have about 10
# Longest a decode may hold up its caller: a 12-MP JPEG takes ~0.1 s here and under 1 s on a Pi 4.
DECODE_BUDGET_S = 3.0
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_JPEG_PIXELS))

import cv2  # noqa: E402  (the environment variable above must be set first)

from ..errors import ImageError  # noqa: E402
from ..files import FileRefused, read_regular_file  # noqa: E402

cv2.setNumThreads(1)

_REDUCED_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}
# One decode may run past its budget at a time: its caller has moved on, the decode finishes in
# the background (OpenCV cannot be interrupted), and the next photo waits for it within its own
# budget instead of piling up a second runaway decode's memory and CPU.
_overrun_slot = threading.BoundedSemaphore(1)
# Budgeted decodes run on one long-lived thread: a new thread per photo got its own malloc arena
# each time, and the daemon's steady RSS rose by 14 MB over 300 presses.
_jobs: queue.SimpleQueue[tuple[np.ndarray, int, dict[str, object], threading.Event]] = queue.SimpleQueue()
_worker_lock = threading.Lock()
_worker: threading.Thread | None = None


def _decode_jobs() -> None:
    while True:
        buf, flags, outcome, done = _jobs.get()
        try:
            outcome["image"] = cv2.imdecode(buf, flags)  # releases the GIL
        except cv2.error as exc:
            outcome["error"] = exc
        finally:
            _overrun_slot.release()
            done.set()


def _start_worker() -> None:
    global _worker
    with _worker_lock:
        if _worker is None or not _worker.is_alive():
            _worker = threading.Thread(target=_decode_jobs, name="photo-decode", daemon=True)
            _worker.start()


def photo_format(data: bytes) -> str | None:
    """JPEG, PNG, WebP, BMP or TIFF by the file's first bytes; None for anything else.

    OpenCV also decodes Radiance HDR, OpenEXR, PFM, Sun raster and more; no camera or phone
    writes those.
    """
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data.startswith(b"BM"):
        return "BMP"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    return None


def _too_large(source: str, size: str, kind: str) -> ImageError:
    return ImageError(
        f"{source}: image too large ({size}; {kind} may have at most {MAX_DECODED_PIXELS / 1e6:g} MP, "
        f"a camera JPEG up to {MAX_JPEG_PIXELS / 1e6:g} MP)"
    )


def _header(data: bytes, kind: str, source: str) -> tuple[int, int, bool] | None:
    """Width, height and whether the JPEG is progressive, from the header alone."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            progressive = bool(im.info.get("progressive") or im.info.get("progression"))
            return im.size[0], im.size[1], progressive
    except Image.DecompressionBombError:  # Pillow refuses to report a size this large
        raise _too_large(source, f"more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} MP", f"a {kind}") from None
    except Exception:  # Pillow cannot read every header OpenCV can; OpenCV's own caps apply then
        return None


def jpeg_reduction(pixels: int) -> int | None:
    """The smallest of 1, 2, 4, 8 that brings a JPEG of `pixels` within MAX_DECODED_PIXELS."""
    for factor in _REDUCED_FLAGS:
        if pixels <= MAX_DECODED_PIXELS * factor * factor:
            return factor
    return None


def _decode_flags(data: bytes, kind: str, source: str) -> int:
    """How to decode, or an ImageError for a file whose pixels would not fit the budget."""
    if kind == "JPEG" and (scans := data.count(b"\xff\xda")) > MAX_JPEG_SCANS:
        # Each scan is decoded over the whole image. Markers cannot occur inside the coded data
        # (0xFF there is followed by 0x00), so counting them is exact enough.
        raise ImageError(f"{source}: a JPEG of {scans} scans (a camera writes at most a dozen); not decoded")
    header = _header(data, kind, source)
    if header is None:
        return cv2.IMREAD_COLOR
    width, height, progressive = header
    pixels = width * height
    if kind != "JPEG" or progressive:
        # No scaled decoding for these: a progressive JPEG keeps every coefficient of the full
        # image in memory whatever the output size, the other formats decode whole.
        if pixels > MAX_DECODED_PIXELS:
            what = "a progressive JPEG" if kind == "JPEG" else f"a {kind}"
            raise _too_large(source, f"{width}x{height} pixels", what)
        return cv2.IMREAD_COLOR
    factor = jpeg_reduction(pixels) if pixels <= MAX_JPEG_PIXELS else None
    if factor is None:
        raise ImageError(f"{source}: image too large ({width}x{height} pixels; at most {MAX_JPEG_PIXELS / 1e6:g} MP)")
    return _REDUCED_FLAGS[factor]


def _imdecode_within(buf: np.ndarray, flags: int, budget_s: float | None, source: str) -> np.ndarray | None:
    """cv2.imdecode, giving up after `budget_s` (None: no limit, as training decodes)."""
    if budget_s is None:
        return cv2.imdecode(buf, flags)
    deadline = time.monotonic() + budget_s
    if not _overrun_slot.acquire(timeout=budget_s):
        raise ImageError(f"{source}: not decoded: an earlier photo is still decoding past its {budget_s:g} s budget")
    outcome: dict[str, object] = {}
    done = threading.Event()
    _start_worker()
    _jobs.put((buf, flags, outcome, done))
    if not done.wait(max(0.0, deadline - time.monotonic())):
        raise ImageError(f"{source}: took longer than {budget_s:g} s to decode; not used")
    if isinstance(error := outcome.get("error"), cv2.error):
        raise error
    image = outcome.get("image")
    return image if isinstance(image, np.ndarray) else None


def decode_image(data: bytes, source: str = "image", budget_s: float | None = None) -> np.ndarray:
    """Bytes of a JPEG/PNG/... to an upright BGR uint8 array (EXIF orientation applied).

    A JPEG larger than MAX_DECODED_PIXELS comes back scaled down by 2, 4 or 8.
    """
    if len(data) == 0:
        raise ImageError(f"{source}: empty file (0 bytes)")
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"{source}: file too large ({len(data) / 1e6:.0f} MB > {MAX_FILE_BYTES / 1e6:.0f} MB)")
    kind = photo_format(data)
    if kind is None:
        raise ImageError(f"{source}: not a photo (JPEG, PNG, WebP, BMP or TIFF), or damaged at its start")
    flags = _decode_flags(data, kind, source)
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        image = _imdecode_within(buf, flags, budget_s, source)  # applies EXIF orientation
    except cv2.error as exc:
        if "CV_IO_MAX_IMAGE_PIXELS" in exc.msg:  # a header only OpenCV could read
            raise _too_large(source, f"more than {MAX_JPEG_PIXELS / 1e6:g} MP", f"a {kind}") from None
        raise ImageError(f"{source}: cannot decode image ({exc.msg.strip() or 'OpenCV error'})") from None
    if image is None or image.size == 0:
        raise ImageError(f"{source}: not a readable image (unknown format, truncated or corrupt)")
    if image.shape[0] * image.shape[1] > MAX_DECODED_PIXELS:  # a header Pillow could not read
        raise ImageError(f"{source}: image too large ({image.shape[1]}x{image.shape[0]} pixels)")
    if min(image.shape[:2]) < 32:
        raise ImageError(f"{source}: image too small ({image.shape[1]}x{image.shape[0]} pixels)")
    return image


def read_image(path: str | os.PathLike[str], budget_s: float | None = DECODE_BUDGET_S) -> np.ndarray:
    """Read and decode a photo file; every failure is an ImageError naming the file."""
    p = Path(path)
    try:
        data = read_regular_file(p, MAX_FILE_BYTES)  # a FIFO or /dev/zero would hang or eat memory
    except FileRefused as exc:
        raise ImageError(f"{p}: {exc}") from None
    except IsADirectoryError:
        raise ImageError(f"{p}: is a folder, not an image file") from None
    except OSError as exc:
        raise ImageError(f"{p}: cannot read file ({exc.strerror or exc})") from None
    return decode_image(data, str(p), budget_s)
