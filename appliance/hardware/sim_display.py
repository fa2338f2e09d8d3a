"""A display that writes PNG files: simulation mode shows its screens this way, tests read them."""

from __future__ import annotations

import os
import re
import tempfile
from collections import deque
from pathlib import Path

import cv2
import numpy as np

from .closing import Closing
from .framebuffer import fit_frame

_NUMBERED = re.compile(r"^frame-(\d{6,})\.png$")


class SimulatedDisplay(Closing):
    """Each frame becomes ``out_dir/latest.png`` (replaced atomically, so a viewer never reads
    half a file) and ``out_dir/frame-000001.png``...; only the newest ``history`` numbered
    frames are kept. Numbering continues after frames left by an earlier run.
    """

    def __init__(self, out_dir: Path, width: int = 480, height: int = 320, history: int = 200) -> None:
        self.out_dir = Path(out_dir)
        self.width, self.height = width, height
        self.history = max(0, history)
        self.frames_written = 0
        self.last_frame: np.ndarray | None = None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        existing = sorted((int(m.group(1)), p) for p in self.out_dir.iterdir() if (m := _NUMBERED.match(p.name)))
        self._kept: deque[Path] = deque(p for _, p in existing)
        self._next_no = existing[-1][0] + 1 if existing else 1
        self._prune()

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @property
    def latest_path(self) -> Path:
        return self.out_dir / "latest.png"

    def show(self, frame: np.ndarray) -> None:
        rgb = fit_frame(frame, self.width, self.height)
        ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise OSError("PNG encoding of the screen failed")
        data = png.tobytes()
        _write_atomically(self.latest_path, data)
        if self.history:
            numbered = self.out_dir / f"frame-{self._next_no:06d}.png"
            _write_atomically(numbered, data)
            self._next_no += 1
            self._kept.append(numbered)
            self._prune()
        self.frames_written += 1
        self.last_frame = rgb.copy()

    def _prune(self) -> None:
        while len(self._kept) > self.history:
            self._kept.popleft().unlink(missing_ok=True)

    def close(self) -> None:
        pass


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
