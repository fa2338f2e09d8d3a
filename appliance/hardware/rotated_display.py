"""display.rotate: a panel mounted turned. The screens are drawn for the turned size, then turned back.

Works on any Display (framebuffer or simulated), so the simulation shows what the panel receives.
"""

from __future__ import annotations

import numpy as np

from ..ports import Display
from .closing import Closing


class RotatedDisplay(Closing):
    """`degrees` clockwise: 90 shows a 320x480 portrait screen on a 480x320 panel turned a quarter clockwise."""

    def __init__(self, panel: Display, degrees: int) -> None:
        if degrees not in (0, 90, 180, 270):
            raise ValueError(f"display rotation must be 0, 90, 180 or 270 degrees, not {degrees}")
        self.panel, self.degrees = panel, degrees

    @property
    def size(self) -> tuple[int, int]:
        width, height = self.panel.size
        return (height, width) if self.degrees in (90, 270) else (width, height)

    def show(self, frame: np.ndarray) -> None:
        # np.rot90 turns counter-clockwise for positive k: a clockwise-mounted panel needs the
        # picture turned the other way so that it reads upright once mounted.
        self.panel.show(np.ascontiguousarray(np.rot90(frame, k=self.degrees // 90)))

    def close(self) -> None:
        self.panel.close()
