"""The photo as a screen shows it: the centre square the model judged, no larger than a screen draws it.

The result, retake and "not known" screens draw that square at most half the display's shorter
side across, so this is all they need, and all that the daemon's last 64 screens keep: about
80 kB each on a 480x320 display instead of a 9 MB camera frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from .preprocess import center_square


def screen_preview(frame: np.ndarray, display_size: tuple[int, int]) -> np.ndarray:
    """A copy of the frame's centre square, at most half the display's shorter side across."""
    square = center_square(frame)
    side = max(8, min(display_size) // 2)
    if square.shape[0] <= side:
        return square.copy()  # a copy all the same: the caller may drop or reuse the frame
    return cv2.resize(square, (side, side), interpolation=cv2.INTER_AREA)
