"""The photo as a screen shows it: no larger than the display, so nothing downstream keeps a full frame."""

from __future__ import annotations

import cv2
import numpy as np


def screen_preview(frame: np.ndarray, display_size: tuple[int, int]) -> np.ndarray:
    """A copy of the frame that fits inside the display (w, h), aspect kept; never larger than the frame."""
    h, w = frame.shape[:2]
    scale = min(display_size[0] / w, display_size[1] / h, 1.0)
    if scale >= 1.0:
        return frame.copy()  # a copy all the same: the caller may drop or reuse the frame
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
