"""The photo as the store keeps it: JPEG bytes of the frame the diagnosis saw.

In the core (vision), not the store: the daemon encodes before it asks the store to record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

JPEG_QUALITY = 90


def encode_jpeg(bgr: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """JPEG bytes of a BGR (or grey) uint8 image, as the camera adapters deliver it."""
    import cv2  # only the writer needs OpenCV; `appliance history` should not pay for its import
    import numpy as np

    if not isinstance(bgr, np.ndarray) or bgr.dtype != np.uint8:
        kind = getattr(bgr, "dtype", type(bgr).__name__)
        raise ValueError(f"photo to encode must be a uint8 numpy image, got {kind}")
    if not (bgr.ndim == 2 or (bgr.ndim == 3 and bgr.shape[2] in (1, 3))) or bgr.size == 0:
        raise ValueError(f"photo to encode must be HxW or HxWx3 (BGR), got shape {bgr.shape}")
    if not 0 <= quality <= 100:
        raise ValueError(f"JPEG quality must be 0..100, got {quality}")
    ok, buffer = cv2.imencode(".jpg", bgr, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ValueError(f"OpenCV could not encode a {bgr.shape} image as JPEG")
    return buffer.tobytes()
