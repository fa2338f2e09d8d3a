"""What the appliance's small screen shows, drawn as RGB arrays from plain data.

The daemon builds one of the frozen dataclasses below and calls :func:`render`; nothing
here touches hardware, so the same pictures go to a framebuffer, to PNG files in
simulation, and into tests. Layout is derived from the screen size (240x240 up to
800x480): font sizes follow the height and width, text is wrapped to its box and
shrunk down to a readable minimum, and what still does not fit ends in an ellipsis
instead of running off the screen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from leaf_wire import reasons

from . import labels
from .result import Diagnosis, RetakeReason, UnknownReason

FONT_DIR = Path(__file__).resolve().parent / "data" / "fonts"
REGULAR_FONT = FONT_DIR / "DejaVuSans.ttf"
BOLD_FONT = FONT_DIR / "DejaVuSans-Bold.ttf"

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

ELLIPSIS = "…"

READY_HINT = "Hold a leaf in front of the camera and press the button"
UNKNOWN_TITLE = "Not known"
UNKNOWN_NEXT = "Press the button for the next leaf."

# Per reason: what is wrong, and one short hint for a better photo.
# (headline, how to take a better photo) per reason; the words live in labels.py with the others.
RETAKE_TEXT: dict[RetakeReason, tuple[str, str]] = {r: reasons.retake_words(r.value) for r in RetakeReason}


# ---- what the daemon passes -----------------------------------------------------------------------


@dataclass(frozen=True)
class ReadyScreen:
    model_version: str = ""
    records: int | None = None
    free_mb: float | None = None  # free storage in MiB (2**20 bytes)
    now: datetime | None = None  # None: the current local time
    status: str = ""  # one optional line, e.g. sync state or a storage warning
    warning: bool = False  # show ``status`` on an amber band
    crops: tuple[str, ...] | None = None  # display names of the configured crops; () = all; None = no line


@dataclass(frozen=True)
class WorkingScreen:
    stage: str = ""


@dataclass(frozen=True, eq=False)
class ResultScreen:
    diagnosis: Diagnosis
    photo: np.ndarray | None = None  # BGR, as captured


@dataclass(frozen=True, eq=False)
class RetakeScreen:
    reason: RetakeReason
    photo: np.ndarray | None = None  # BGR, as captured
    headline: str | None = None  # overrides RETAKE_TEXT, e.g. in another language
    hint: str | None = None


@dataclass(frozen=True, eq=False)
class UnknownScreen:
    """A usable photo whose answer is not in the model: another plant, or a condition it was not taught."""

    headline: str  # the Diagnosis's condition, e.g. "I don't know this plant"
    hint: str  # the Diagnosis's advice: what to do instead
    crop: str = ""  # the crop's display name when the crop is known (unknown condition)
    reason: UnknownReason | None = None
    photo: np.ndarray | None = None  # BGR, as captured

    @classmethod
    def of(cls, d: Diagnosis, photo: np.ndarray | None = None) -> UnknownScreen:
        reason = d.reason if isinstance(d.reason, UnknownReason) else None
        return cls(headline=d.condition, hint=d.advice, crop=d.crop, reason=reason, photo=photo)


@dataclass(frozen=True)
class FaultScreen:
    title: str
    problem: str
    action: str
    code: int | None = None  # the LED blink code: red blinks per cycle


@dataclass(frozen=True)
class ProgressScreen:
    title: str
    done: int
    total: int
    bytes_done: int = 0
    bytes_total: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class MessageScreen:
    title: str
    body: str = ""
    tone: Literal["info", "ok", "warning", "error"] = "info"


Screen = (
    ReadyScreen
    | WorkingScreen
    | ResultScreen
    | RetakeScreen
    | UnknownScreen
    | FaultScreen
    | ProgressScreen
    | MessageScreen
)


# ---- text fitting ---------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    """A cached font: loading a TrueType file for every frame would cost more than drawing it."""
    return ImageFont.truetype(str(BOLD_FONT if bold else REGULAR_FONT), size)


def line_height(f: ImageFont.FreeTypeFont) -> int:
    ascent, descent = f.getmetrics()
    return round((ascent + descent) * 1.12)


def block_height(f: ImageFont.FreeTypeFont, lines: int) -> int:
    """Pixels from the top of the first line to the bottom of the last."""
    if lines <= 0:
        return 0
    ascent, descent = f.getmetrics()
    return (lines - 1) * line_height(f) + ascent + descent


def ellipsize(text: str, f: ImageFont.FreeTypeFont, width: float, force: bool = False) -> str:
    """``text`` if it fits in ``width`` pixels, else its longest prefix that fits followed by an ellipsis.

    ``force`` adds the ellipsis even when the text fits (it marks text cut off after it).
    """
    if not force and f.getlength(text) <= width:
        return text
    if f.getlength(ELLIPSIS) > width:
        return ""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if f.getlength(text[:mid].rstrip() + ELLIPSIS) <= width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + ELLIPSIS


def wrap(text: str, f: ImageFont.FreeTypeFont, width: float) -> list[str]:
    """Greedy word wrap; keeps explicit line breaks; a word wider than the line is cut with an ellipsis."""
    return _wrap(text, f, width)[0]


def _wrap(text: str, f: ImageFont.FreeTypeFont, width: float) -> tuple[list[str], bool]:
    lines: list[str] = []
    cut = False
    space = f.getlength(" ")
    for paragraph in text.split("\n"):
        current, current_w = "", 0.0
        for word in paragraph.split():
            word_w = f.getlength(word)
            if word_w > width:
                word, cut = ellipsize(word, f, width), True
                word_w = f.getlength(word)
            if current and current_w + space + word_w <= width:
                current, current_w = f"{current} {word}", current_w + space + word_w
            else:
                if current:
                    lines.append(current)
                current, current_w = word, word_w
        lines.append(current)
    while lines and not lines[-1]:
        lines.pop()
    return lines, cut


@dataclass(frozen=True)
class Fitted:
    lines: tuple[str, ...]
    font: ImageFont.FreeTypeFont
    truncated: bool

    @property
    def height(self) -> int:
        return block_height(self.font, len(self.lines))


def _count_lines(paragraphs: list[list[float]], space: float, width: float) -> int | None:
    """How many lines greedy wrapping makes, from word widths alone; None if a word is wider than a line."""
    count = 0
    for words in paragraphs:
        used = -1.0  # -1: the line is still empty
        lines = 1
        for w in words:
            if w > width:
                return None
            if used < 0:
                used = w
            elif used + space + w <= width:
                used += space + w
            else:
                lines += 1
                used = w
        count += lines
    return count


def _candidate_sizes(max_size: int, min_size: int) -> list[int]:
    sizes, size = [max_size], max_size
    while size > min_size:
        size = max(min_size, min(size - 1, int(size * 0.92)))
        sizes.append(size)
    return sizes


def fit_text(
    text: str,
    width: float,
    height: float,
    max_size: int,
    min_size: int,
    bold: bool = False,
    max_lines: int | None = None,
) -> Fitted:
    """The largest size from ``max_size`` down to ``min_size`` at which ``text`` fits the box.

    At the minimum size, lines that do not fit are dropped and the last kept line ends
    with an ellipsis, so the text never leaves its box. Word widths are measured once and
    scaled to pick a size (measuring every word at every size is too slow on a Pi); the
    pick is then checked with an exact wrap.
    """
    min_size = min(min_size, max_size)

    def fits(f: ImageFont.FreeTypeFont, lines: int | None) -> bool:
        if lines is None:  # a word would have to be cut: try a smaller size first
            return False
        return block_height(f, lines) <= height and (max_lines is None or lines <= max_lines)

    sizes = _candidate_sizes(max_size, min_size)
    reference = font(max_size, bold)
    paragraphs = [[reference.getlength(word) for word in p.split()] for p in text.rstrip("\n").split("\n")]
    space = reference.getlength(" ")
    start = len(sizes) - 1
    for i, size in enumerate(sizes):
        scale = size / max_size
        if fits(font(size, bold), _count_lines(paragraphs, space * scale, width / scale * 0.985)):
            start = i
            break
    for size in sizes[start:]:
        f = font(size, bold)
        lines, cut = _wrap(text, f, width)
        if fits(f, None if cut else len(lines)):
            return Fitted(tuple(lines), f, truncated=False)
    room = 0
    while room < len(lines) and block_height(f, room + 1) <= height:
        room += 1
    if max_lines is not None:
        room = min(room, max_lines)
    kept = lines[:room]
    if kept and room < len(lines):
        kept[-1] = ellipsize(kept[-1], f, width, force=True)
    return Fitted(tuple(kept), f, truncated=True)


# ---- drawing --------------------------------------------------------------------------------------


class _Canvas:
    """One frame being drawn, with sizes derived from its dimensions."""

    def __init__(self, size: tuple[int, int]) -> None:
        w, h = int(size[0]), int(size[1])
        if w < 64 or h < 64:
            raise ValueError(f"screen size {w}x{h} is too small to draw on (at least 64x64)")
        self.w, self.h = w, h
        self.image = Image.new("RGB", (w, h), WHITE)
        self.draw = ImageDraw.Draw(self.image)
        self.s = min(h, w * 0.75)  # the scale fonts follow: height, unless the screen is narrow
        self.margin = max(6, round(self.s * 0.045))
        self.header_h = max(30, round(self.s * 0.19))
        self.huge = max(16, round(self.s * 0.125))
        self.body = max(14, round(self.s * 0.085))
        self.small = max(12, round(self.s * 0.06))
        self.min_text = max(12, round(self.s * 0.045))

    def header(self, title: str, colour: RGB, right: str = "") -> int:
        """A full-width band with the title; returns the y where the body starts."""
        hh, m = self.header_h, self.margin
        self.draw.rectangle((0, 0, self.w, hh), fill=colour)
        ink = INK if colour in (AMBER, WARNING_BAND) else WHITE
        right_w = 0
        if right:
            rf = font(max(12, round(hh * 0.42)), True)
            right_w = rf.getlength(right)
            self.draw.text((self.w - m, hh // 2), right, font=rf, fill=ink, anchor="rm")
            right_w += m
        # A long title is cut rather than shrunk: the band must stay readable from a distance.
        title_w, title_min = self.w - 2 * m - right_w, max(12, round(hh * 0.42))
        fitted = fit_text(title, title_w, hh * 0.8, round(hh * 0.56), title_min, bold=True, max_lines=1)
        if fitted.lines:
            self.draw.text((m, hh // 2), fitted.lines[0], font=fitted.font, fill=ink, anchor="lm")
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


def _human_bytes(n: int) -> str:
    """Decimal units, as storage is sold: 950 MB, 12.3 GB."""
    value = float(max(0, n))
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if value >= 100 or unit in ("B", "KB") else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB" if value < 100 else f"{value:.0f} TB"


# ---- the screens ----------------------------------------------------------------------------------


def render_ready(screen: ReadyScreen, size: tuple[int, int]) -> np.ndarray:
    c = _Canvas(size)
    now = screen.now or datetime.now()
    top = c.header("Ready", BLUE, right=now.strftime("%H:%M"))
    m, bottom = c.margin, c.h - c.margin

    if screen.status:
        fs = fit_text(screen.status, c.w - 2 * m, c.s * 0.2, c.small, 12, max_lines=2)
        band_top = bottom - fs.height - m
        if screen.warning:
            c.draw.rectangle((0, band_top - m // 2, c.w, c.h), fill=WARNING_BAND)
        c.text(fs, m, band_top, INK if screen.warning else MUTED)
        bottom = band_top - m

    facts = []
    if screen.records is not None:
        facts.append(f"{screen.records:,} records stored")
    if screen.free_mb is not None:
        facts.append(f"{_human_bytes(round(screen.free_mb * 2**20))} free")
    info_lines = [
        labels.crops_line(screen.crops) if screen.crops is not None else "",
        f"Model {screen.model_version}" if screen.model_version else "",
        " · ".join(facts),
    ]
    info = "\n".join(line for line in info_lines if line)
    if info:
        fi = fit_text(info, c.w - 2 * m, c.s * 0.3, c.small, 12, max_lines=3)
        c.text(fi, m, bottom - fi.height, MUTED)
        bottom -= fi.height + m

    fh = fit_text(READY_HINT, c.w - 2 * m, max(0, bottom - top), c.huge, c.min_text, bold=True)
    c.text(fh, m, top + max(0, (bottom - top - fh.height) // 2), INK, width=c.w - 2 * m, align="center")
    return c.array()


def render_working(screen: WorkingScreen, size: tuple[int, int]) -> np.ndarray:
    c = _Canvas(size)
    top = c.header("Working", BLUE)
    m = c.margin
    main = fit_text("Looking at the leaf…", c.w - 2 * m, (c.h - top) * 0.6, c.huge, c.min_text, bold=True)
    stage = fit_text(screen.stage, c.w - 2 * m, c.s * 0.2, c.body, 12, max_lines=2) if screen.stage else None
    total = main.height + (m + stage.height if stage else 0)
    y = top + max(0, (c.h - m - top - total) // 2)
    y = c.text(main, m, y, INK, width=c.w - 2 * m, align="center")
    if stage:
        c.text(stage, m, y + m, MUTED, width=c.w - 2 * m, align="center")
    return c.array()


def _confidence(c: _Canvas, probability: float, x: int, y: int, width: int, colour: RGB) -> int:
    # Never "100% sure": a calibrated 99.8% is still wrong now and then.
    shown = min(99, round(probability * 100))
    label = f"{shown}% sure"
    f = fit_text(label, width, c.s * 0.12, round(c.body * 0.9), 12, bold=True, max_lines=1)
    y = c.text(f, x, y, INK)
    bar_h = max(8, round(c.s * 0.045))
    c.bar(x, y + c.margin // 2, width, bar_h, shown / 100, colour)
    return y + c.margin // 2 + bar_h


def render_result(screen: ResultScreen, size: tuple[int, int]) -> np.ndarray:
    c = _Canvas(size)
    d = screen.diagnosis
    colour = GREEN if d.healthy else RED
    top = c.header(d.crop or "Result", colour)
    m = c.margin
    condition = d.condition or ("Healthy" if d.healthy else "Disease found")
    probability = d.best.probability if d.top else 0.0
    body_h = c.h - top - m
    # The photo only confirms which leaf was judged; the words need the room, so it stays small.
    side = int(min(body_h * 0.45, c.w * 0.3)) if screen.photo is not None else 0
    if side:
        c.photo(screen.photo, m, top, side)
    x = m + side + m if side else m
    width = c.w - x - m
    max_cond_h = (side if side else body_h * 0.4) - c.s * 0.12
    fc = fit_text(condition, width, max_cond_h, c.huge, c.min_text, bold=True, max_lines=3 if side else 2)
    y = c.text(fc, x, top, colour)
    y = _confidence(c, probability, x, y + m // 2, width, colour)
    advice_top = max(top + side, y) + m
    fa = fit_text(d.advice, c.w - 2 * m, c.h - m - advice_top, c.body, c.min_text)
    c.text(fa, m, advice_top, INK)
    return c.array()


def _footer_and_photo(c: _Canvas, footer_text: str, photo: np.ndarray | None, top: int) -> tuple[int, int, int, int]:
    """The next-action footer and the photo thumbnail of a retake or unknown screen.

    Returns (footer top, body height, photo side, x where the text beside the photo starts).
    """
    m = c.margin
    footer = fit_text(footer_text, c.w - 2 * m, c.s * 0.2, c.small, 12, max_lines=2)
    bottom = c.h - m - footer.height
    c.text(footer, m, bottom, MUTED)
    body_h = bottom - m - top
    side = int(min(body_h * 0.45, c.w * 0.3)) if photo is not None else 0
    if side:
        c.photo(photo, m, top, side)
    return bottom, body_h, side, (m + side + m if side else m)


def render_retake(screen: RetakeScreen, size: tuple[int, int]) -> np.ndarray:
    c = _Canvas(size)
    top = c.header("Please try again", AMBER)
    m = c.margin
    default_headline, default_hint = RETAKE_TEXT.get(screen.reason, ("Photo not usable", "Take the photo again."))
    headline = screen.headline or default_headline
    hint = screen.hint or default_hint
    bottom, body_h, side, x = _footer_and_photo(c, "Press the button for a new photo.", screen.photo, top)
    fh = fit_text(headline, c.w - x - m, side or body_h * 0.4, c.huge, c.min_text, bold=True, max_lines=3)
    y = max(c.text(fh, x, top, INK), top + side) + m
    ft = fit_text(hint, c.w - 2 * m, bottom - m - y, c.body, c.min_text)
    c.text(ft, m, y, INK)
    return c.array()


def render_unknown(screen: UnknownScreen, size: tuple[int, int]) -> np.ndarray:
    c = _Canvas(size)
    top = c.header(UNKNOWN_TITLE, PURPLE)
    m = c.margin
    headline = screen.headline or reasons.unknown_words(screen.reason.value if screen.reason else "")[0]
    hint = screen.hint or reasons.unknown_words(screen.reason.value if screen.reason else "")[1]
    bottom, body_h, side, x = _footer_and_photo(c, UNKNOWN_NEXT, screen.photo, top)
    y = top
    room = max(side, body_h * 0.5)  # the headline may run below the photo: it is what matters here
    if screen.crop:
        fc = fit_text(screen.crop, c.w - x - m, c.s * 0.12, c.body, 12, bold=True, max_lines=1)
        y = c.text(fc, x, y, PURPLE) + m // 2
        room = max(0, room - (y - top))
    fh = fit_text(headline, c.w - x - m, room, c.huge, c.min_text, bold=True, max_lines=3)
    y = max(c.text(fh, x, y, INK), top + side) + m
    ft = fit_text(hint, c.w - 2 * m, bottom - m - y, c.body, c.min_text)
    c.text(ft, m, y, INK)
    return c.array()


def render_fault(screen: FaultScreen, size: tuple[int, int]) -> np.ndarray:
    c = _Canvas(size)
    top = c.header(screen.title, RED)
    m = c.margin
    bottom = c.h - m
    if screen.code:
        n = screen.code
        dot = max(8, round(c.body * 0.75))
        dots_w = min(n, 9) * dot * 1.5
        fl = fit_text(f"Red light: {n} blinks", c.w - 3 * m - dots_w, c.s * 0.15, c.body, 12, bold=True, max_lines=1)
        row_h = max(fl.height, dot)
        row_y = bottom - row_h
        c.text(fl, m, row_y + (row_h - fl.height) // 2, INK)
        dx = m + (fl.font.getlength(fl.lines[0]) if fl.lines else 0) + m
        cy = row_y + row_h / 2
        for i in range(n):
            x0 = dx + i * dot * 1.5
            if x0 + dot > c.w - m:
                break
            c.draw.ellipse((x0, cy - dot / 2, x0 + dot, cy + dot / 2), fill=RED)
        bottom = row_y - m
    fp = fit_text(screen.problem, c.w - 2 * m, (bottom - top) * 0.45, c.huge, c.min_text, bold=True, max_lines=3)
    yy = c.text(fp, m, top, INK) + m
    fa = fit_text(screen.action, c.w - 2 * m, bottom - yy, c.body, c.min_text)
    c.text(fa, m, yy, INK)
    return c.array()


def render_progress(screen: ProgressScreen, size: tuple[int, int]) -> np.ndarray:
    c = _Canvas(size)
    top = c.header(screen.title, BLUE)
    m = c.margin
    width = c.w - 2 * m
    total = max(0, screen.total)
    done = min(max(0, screen.done), total) if total else max(0, screen.done)
    count = fit_text(f"{done:,} of {total:,}", width, c.s * 0.2, c.huge, 12, bold=True, max_lines=1)
    if screen.bytes_total:
        mb = f"{screen.bytes_done / 1e6:.1f} of {screen.bytes_total / 1e6:.1f} MB"
    else:
        mb = f"{screen.bytes_done / 1e6:.1f} MB"
    fmb = fit_text(mb, width, c.s * 0.15, c.body, 12, max_lines=1)
    bar_h = max(10, round(c.s * 0.07))
    detail = fit_text(screen.detail, width, c.s * 0.2, c.small, 12, max_lines=2) if screen.detail else None
    block = count.height + m + fmb.height + m + bar_h + (m + detail.height if detail else 0)
    y = top + max(0, (c.h - m - top - block) // 2)
    y = c.text(count, m, y, INK, width=width, align="center") + m
    y = c.text(fmb, m, y, MUTED, width=width, align="center") + m
    fraction = done / total if total else 0.0
    if screen.bytes_total:
        fraction = screen.bytes_done / screen.bytes_total
    c.bar(m, y, width, bar_h, fraction, BLUE)
    if detail:
        c.text(detail, m, y + bar_h + m, MUTED, width=width, align="center")
    return c.array()


TONES: dict[str, RGB] = {"info": SLATE, "ok": GREEN, "warning": AMBER, "error": RED}


def render_message(screen: MessageScreen, size: tuple[int, int]) -> np.ndarray:
    c = _Canvas(size)
    top = c.header(screen.title, TONES.get(screen.tone, SLATE))
    m = c.margin
    if screen.body:
        fb = fit_text(screen.body, c.w - 2 * m, c.h - m - top, c.huge, c.min_text, bold=True)
        y = top + max(0, (c.h - m - top - fb.height) // 2)
        c.text(fb, m, y, INK, width=c.w - 2 * m, align="center")
    return c.array()


_RENDERERS: dict[type, Callable[..., np.ndarray]] = {
    ReadyScreen: render_ready,
    WorkingScreen: render_working,
    ResultScreen: render_result,
    RetakeScreen: render_retake,
    UnknownScreen: render_unknown,
    FaultScreen: render_fault,
    ProgressScreen: render_progress,
    MessageScreen: render_message,
}


def render(screen: Screen, size: tuple[int, int]) -> np.ndarray:
    """The screen as an RGB uint8 array of shape (height, width, 3) for a display of ``size`` (w, h)."""
    try:
        renderer = _RENDERERS[type(screen)]
    except KeyError:
        raise TypeError(f"no renderer for {type(screen).__name__}") from None
    return renderer(screen, size)
