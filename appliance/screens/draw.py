"""The colours and the canvas every screen is drawn on, sized from the display's dimensions."""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from PIL import Image, ImageDraw

from appliance.screens.text import Fitted, block_height, fit_text, font, line_height
from appliance.words import ENGLISH, language_name

RGB = tuple[int, int, int]

# High contrast for a small screen read outdoors: dark ink on white, saturated header bands.
WHITE: RGB = (255, 255, 255)
INK: RGB = (17, 17, 17)
MUTED: RGB = (66, 66, 66)
TRACK: RGB = (214, 214, 214)
BLUE: RGB = (13, 71, 161)
GREEN: RGB = (27, 110, 32)
RED: RGB = (183, 28, 28)
AMBER: RGB = (255, 179, 0)
SLATE: RGB = (55, 71, 79)
PURPLE: RGB = (74, 20, 140)  # "not known": neither a result (green/red) nor a bad photo (amber)
WARNING_BAND: RGB = (255, 224, 130)

# The smallest font pixel size any screen uses: below it text is unreadable on a 1.3-2.8 inch panel.
MIN_TEXT = 16


class Canvas:
    """One frame being drawn, with sizes derived from its dimensions."""

    def __init__(self, size: tuple[int, int], language: str = ENGLISH) -> None:
        w, h = int(size[0]), int(size[1])
        if w < 64 or h < 64:
            raise ValueError(f"screen size {w}x{h} is too small to draw on (at least 64x64)")
        self.w, self.h = w, h
        self.image = Image.new("RGB", (w, h), WHITE)
        self.draw = ImageDraw.Draw(self.image)
        self.s = min(h, w * 0.75)  # the scale fonts follow: height, unless the screen is narrow
        self.margin = max(6, round(self.s * 0.045))
        self.header_h = max(30, round(self.s * 0.19))
        self.huge = max(20, round(self.s * 0.125))
        self.body = max(MIN_TEXT, round(self.s * 0.085))
        self.small = max(MIN_TEXT, round(self.s * 0.06))
        self.min_text = max(MIN_TEXT, round(self.s * 0.045))
        # The language's name in itself is a sample of its script: boxes are sized with its font's lines.
        self.script_sample = language_name(language)
        self.font_sizes: list[int] = []  # every font size drawn, so tests can hold the readable minimum
        self.texts: list[str] = []  # the body text drawn, line breaks as spaces
        self.cut: list[str] = []  # body text that did not fit and ends in an ellipsis

    @property
    def smallest_font(self) -> int | None:
        """The smallest font pixel size drawn on this frame; None when it has no text."""
        return min(self.font_sizes) if self.font_sizes else None

    def room(self, lines: int, size: int, bold: bool = False) -> float:
        """The height ``lines`` lines of text at ``size`` px need: a box never smaller than its minimum text."""
        return block_height(font(size, bold, self.script_sample), lines) + 1

    def header(self, title: str, colour: RGB, right: str = "") -> int:
        """A full-width band with the title; returns the y where the body starts."""
        hh, m = self.header_h, self.margin
        self.draw.rectangle((0, 0, self.w, hh), fill=colour)
        ink = INK if colour in (AMBER, WARNING_BAND) else WHITE
        right_w = 0
        if right:
            rf = font(max(MIN_TEXT, round(hh * 0.42)), True, right)
            self.font_sizes.append(rf.size)
            right_w = rf.getlength(right)
            self.draw.text((self.w - m, hh // 2), right, font=rf, fill=ink, anchor="rm")
            right_w += m
        # A long title shrinks to the readable minimum, then is cut: the band must stay readable from a distance.
        title_w, title_min = self.w - 2 * m - right_w, MIN_TEXT
        fitted = fit_text(title, title_w, hh * 0.8, round(hh * 0.56), title_min, bold=True, max_lines=1)
        if fitted.lines:
            self.font_sizes.append(fitted.font.size)
            self.texts.append(" ".join(fitted.lines))
            self.draw.text((m, hh // 2), fitted.lines[0], font=fitted.font, fill=ink, anchor="lm")
        if fitted.truncated:
            self.cut.append(" ".join(fitted.lines))
        return hh + m

    def text(
        self,
        fitted: Fitted,
        x: float,
        y: float,
        colour: RGB = INK,
        width: float | None = None,
        align: Literal["left", "center"] = "left",
    ) -> int:
        """Draws fitted lines from (x, y) down; returns the y just below them."""
        lh = line_height(fitted.font)
        if fitted.lines:
            self.font_sizes.append(fitted.font.size)
            self.texts.append(" ".join(fitted.lines))
        if fitted.truncated:
            self.cut.append(" ".join(fitted.lines))
        for i, line in enumerate(fitted.lines):
            if align == "center" and width is not None:
                self.draw.text((x + width / 2, y + i * lh), line, font=fitted.font, fill=colour, anchor="ma")
            else:
                self.draw.text((x, y + i * lh), line, font=fitted.font, fill=colour, anchor="la")
        return round(y + fitted.height)

    def bar(self, x: float, y: float, width: float, height: float, fraction: float, colour: RGB) -> None:
        fraction = min(1.0, max(0.0, fraction))
        radius = max(2, round(height / 2))
        self.draw.rounded_rectangle((x, y, x + width, y + height), radius=radius, fill=TRACK)
        if fraction > 0:
            self.draw.rounded_rectangle(
                (x, y, x + max(height, width * fraction), y + height), radius=radius, fill=colour
            )

    def photo(self, bgr: np.ndarray, x: int, y: int, side: int) -> None:
        """The centre square of the photo (what the model judged) as a thumbnail with a frame."""
        if side < 8 or bgr is None or getattr(bgr, "ndim", 0) != 3 or bgr.size == 0:
            return
        h, w = bgr.shape[:2]
        c = min(h, w)
        square = bgr[(h - c) // 2 : (h - c) // 2 + c, (w - c) // 2 : (w - c) // 2 + c, :3]
        inner = side - 4
        thumb = cv2.resize(np.ascontiguousarray(square), (inner, inner), interpolation=cv2.INTER_AREA)
        self.draw.rectangle((x, y, x + side - 1, y + side - 1), fill=MUTED)
        self.image.paste(Image.fromarray(cv2.cvtColor(thumb, cv2.COLOR_BGR2RGB)), (x + 2, y + 2))

    def array(self) -> np.ndarray:
        return np.asarray(self.image, dtype=np.uint8).copy()


def human_bytes(n: int) -> str:
    """Decimal units, as storage is sold: 950 MB, 12.3 GB."""
    value = float(max(0, n))
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if value >= 100 or unit in ("B", "KB") else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB" if value < 100 else f"{value:.0f} TB"
