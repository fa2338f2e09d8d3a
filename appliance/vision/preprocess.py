"""Decode a photo and turn it into the classifier's input tensor.

Training (models/pipeline) calls these same functions, so what the model saw in
training is exactly what it sees on the device.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Decompression bombs: refuse before OpenCV allocates the pixels.
MAX_FILE_BYTES = 40 * 1024 * 1024
MAX_PIXELS = 50_000_000
MAX_JPEG_SCANS = 64  # progressive JPEGs from cameras and phones have about 10
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))

import cv2  # noqa: E402  (the environment variable above must be set first)

from ..errors import ImageError  # noqa: E402
from ..files import FileRefused, read_regular_file  # noqa: E402

cv2.setNumThreads(1)


@dataclass(frozen=True)
class InputSpec:
    """How the model wants its input; read from the model's own metadata."""

    size: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)


def _header_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the file header, without decoding the pixels."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Exception:  # Pillow cannot read every format OpenCV can; OpenCV decides then
        return None


def photo_format(data: bytes) -> str | None:
    """JPEG, PNG, WebP, BMP or TIFF by the file's first bytes; None for anything else.

    OpenCV also decodes Radiance HDR, OpenEXR, PFM, Sun raster and more; no camera or phone
    writes those, and a 3 MB .hdr of 7000x7000 pixels took 793 MB to decode.
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


def decode_image(data: bytes, source: str = "image") -> np.ndarray:
    """Bytes of a JPEG/PNG/... to an upright BGR uint8 array (EXIF orientation applied)."""
    if len(data) == 0:
        raise ImageError(f"{source}: empty file (0 bytes)")
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"{source}: file too large ({len(data) / 1e6:.0f} MB > {MAX_FILE_BYTES / 1e6:.0f} MB)")
    kind = photo_format(data)
    if kind is None:
        raise ImageError(f"{source}: not a photo (JPEG, PNG, WebP, BMP or TIFF), or damaged at its start")
    # Each scan of a progressive JPEG is decoded over the whole image: 20,000 scans in 808 KB took
    # 25 s. Markers cannot occur inside the coded data (0xFF there is followed by 0x00).
    if kind == "JPEG" and (scans := data.count(b"\xff\xda")) > MAX_JPEG_SCANS:
        raise ImageError(f"{source}: a JPEG of {scans} scans (a camera writes at most a dozen); not decoded")
    size = _header_size(data)
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise ImageError(f"{source}: image too large ({size[0]}x{size[1]} pixels)")
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR)  # applies EXIF orientation
    except cv2.error as exc:
        raise ImageError(f"{source}: cannot decode image ({exc.msg.strip() or 'OpenCV error'})") from None
    if image is None or image.size == 0:
        raise ImageError(f"{source}: not a readable image (unknown format, truncated or corrupt)")
    if min(image.shape[:2]) < 32:
        raise ImageError(f"{source}: image too small ({image.shape[1]}x{image.shape[0]} pixels)")
    return image


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
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
    return decode_image(data, str(p))


def center_square(image: np.ndarray) -> np.ndarray:
    """The largest centred square: camera frames are 4:3, the model wants 1:1."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return image[top : top + side, left : left + side]


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    interp = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def to_tensor(rgb_square: np.ndarray, spec: InputSpec) -> np.ndarray:
    """RGB uint8 HxWx3 at the model's size to a normalised float32 1x3xHxW tensor."""
    x = rgb_square.astype(np.float32) * (1.0 / 255.0)
    x -= np.asarray(spec.mean, dtype=np.float32)
    x /= np.asarray(spec.std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def model_view(bgr: np.ndarray, size: int) -> np.ndarray:
    """The RGB square at the model's size: exactly the pixels the classifier sees."""
    square = resize_square(center_square(bgr), size)
    return cv2.cvtColor(square, cv2.COLOR_BGR2RGB)


def preprocess(bgr: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Upright BGR photo to the model input tensor."""
    return to_tensor(model_view(bgr, spec.size), spec)
