"""Text that fits its box: fonts, wrapping, shrinking to a readable minimum, an ellipsis for the rest."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

FONT_DIR = Path(__file__).resolve().parents[1] / "data" / "fonts"
REGULAR_FONT = FONT_DIR / "DejaVuSans.ttf"
BOLD_FONT = FONT_DIR / "DejaVuSans-Bold.ttf"
# DejaVu plus Noto Sans Devanagari (data/fonts/README.md), for text with Devanagari in it.
DEVANAGARI_FONT = FONT_DIR / "LeafSans-Regular.ttf"
DEVANAGARI_BOLD_FONT = FONT_DIR / "LeafSans-Bold.ttf"
DEVANAGARI = ((0x0900, 0x097F), (0x1CD0, 0x1CFF), (0xA8E0, 0xA8FF))


ELLIPSIS = "…"


def needs_devanagari(text: str) -> bool:
    return any(lo <= ord(ch) <= hi for ch in text for lo, hi in DEVANAGARI)


def font_file(text: str = "", bold: bool = False) -> Path:
    """The font that has every glyph of ``text``: DejaVu, or Leaf Sans when it holds Devanagari."""
    if needs_devanagari(text):
        return DEVANAGARI_BOLD_FONT if bold else DEVANAGARI_FONT
    return BOLD_FONT if bold else REGULAR_FONT


def font(size: int, bold: bool = False, text: str = "") -> ImageFont.FreeTypeFont:
    """The font to draw ``text`` in at ``size`` px."""
    return _load(font_file(text, bold), size)


@lru_cache(maxsize=256)
def _load(path: Path, size: int) -> ImageFont.FreeTypeFont:
    """A cached font: loading a TrueType file for every frame would cost more than drawing it."""
    return ImageFont.truetype(str(path), size)


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
    reference = font(max_size, bold, text)
    paragraphs = [[reference.getlength(word) for word in p.split()] for p in text.rstrip("\n").split("\n")]
    space = reference.getlength(" ")
    start = len(sizes) - 1
    for i, size in enumerate(sizes):
        scale = size / max_size
        if fits(font(size, bold, text), _count_lines(paragraphs, space * scale, width / scale * 0.985)):
            start = i
            break
    for size in sizes[start:]:
        f = font(size, bold, text)
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
