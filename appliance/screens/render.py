"""One renderer per screen, and `render`, which picks it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import numpy as np

from appliance import labels
from appliance.probabilities import shown_percent
from appliance.screens.draw import (
    AMBER,
    BLUE,
    GREEN,
    INK,
    MIN_TEXT,
    MUTED,
    PURPLE,
    RED,
    RGB,
    SLATE,
    WARNING_BAND,
    Canvas,
    human_bytes,
)
from appliance.screens.models import (
    FaultScreen,
    MessageScreen,
    ProgressScreen,
    ReadyScreen,
    ResultScreen,
    RetakeScreen,
    Screen,
    UnknownScreen,
    WorkingScreen,
)
from appliance.screens.text import Fitted, fit_text
from appliance.words import ENGLISH, crops_line, say
from leaf_wire import reasons


def render_ready(screen: ReadyScreen, size: tuple[int, int], language: str = ENGLISH) -> Canvas:
    c = Canvas(size, language)
    now = screen.now or datetime.now()
    top = c.header(say("ready.title", language), BLUE, right=now.strftime("%H:%M"))
    m, bottom = c.margin, c.h - c.margin

    if screen.status:
        fs = fit_text(screen.status, c.w - 2 * m, max(c.s * 0.2, c.room(2, MIN_TEXT)), c.small, MIN_TEXT, max_lines=2)
        band_top = bottom - fs.height - m
        if screen.warning:
            c.draw.rectangle((0, band_top - m // 2, c.w, c.h), fill=WARNING_BAND)
        c.text(fs, m, band_top, INK if screen.warning else MUTED)
        bottom = band_top - m

    fx = fit_text(say("ready.export", language), c.w - 2 * m, c.room(2, MIN_TEXT), c.small, MIN_TEXT, max_lines=2)
    c.text(fx, m, bottom - fx.height, INK)
    bottom -= fx.height + m

    facts = []
    if screen.records is not None:
        facts.append(say("ready.records", language, count=f"{screen.records:,}"))
    if screen.free_mb is not None:
        facts.append(say("ready.free", language, size=human_bytes(round(screen.free_mb * 2**20))))
    crops = crops_line(screen.crops, language) if screen.crops is not None else ""
    model = say("ready.model", language, version=screen.model_version) if screen.model_version else ""
    # The hint and the export line are what to do; the facts give way, least useful first.
    hint = say("ready.hint", language)
    hint_need = fit_text(hint, c.w - 2 * m, c.h, MIN_TEXT, MIN_TEXT, bold=True).height + m
    info_room = min(max(c.s * 0.3, c.room(3, MIN_TEXT)), bottom - top - hint_need)
    for kept in ([crops, model, " · ".join(facts)], [crops, " · ".join(facts)], [crops], []):
        info = "\n".join(line for line in kept if line)
        fi = fit_text(info, c.w - 2 * m, info_room, c.small, MIN_TEXT, max_lines=3) if info else None
        if fi is None or not fi.truncated:
            break
    if fi is not None and fi.lines:
        c.text(fi, m, bottom - fi.height, MUTED)
        bottom -= fi.height + m

    fh = fit_text(hint, c.w - 2 * m, max(0, bottom - top), c.huge, c.min_text, bold=True)
    c.text(fh, m, top + max(0, (bottom - top - fh.height) // 2), INK, width=c.w - 2 * m, align="center")
    return c


def render_working(screen: WorkingScreen, size: tuple[int, int], language: str = ENGLISH) -> Canvas:
    c = Canvas(size, language)
    top = c.header(say("working.title", language), BLUE)
    m = c.margin
    main = fit_text(
        screen.title or say("working.looking", language), c.w - 2 * m, (c.h - top) * 0.6, c.huge, c.min_text, bold=True
    )
    stage = fit_text(screen.stage, c.w - 2 * m, c.s * 0.2, c.body, MIN_TEXT, max_lines=2) if screen.stage else None
    total = main.height + (m + stage.height if stage else 0)
    y = top + max(0, (c.h - m - top - total) // 2)
    y = c.text(main, m, y, INK, width=c.w - 2 * m, align="center")
    if stage:
        c.text(stage, m, y + m, MUTED, width=c.w - 2 * m, align="center")
    return c


def _confidence_label(c: Canvas, probability: float, width: int, language: str) -> Fitted:
    label = say("result.sure", language, percent=shown_percent(probability))
    room = max(c.s * 0.12, c.room(1, MIN_TEXT, bold=True))
    return fit_text(label, width, room, max(MIN_TEXT, round(c.body * 0.9)), MIN_TEXT, bold=True, max_lines=1)


def render_result(screen: ResultScreen, size: tuple[int, int], language: str = ENGLISH) -> Canvas:
    c = Canvas(size, language)
    d = screen.diagnosis
    colour = GREEN if d.healthy else RED
    top = c.header(d.crop or say("result.title", language), colour)
    m = c.margin
    condition = d.condition or say("result.healthy" if d.healthy else "result.disease_found", language)
    probability = d.best.probability if d.top else 0.0
    body_h = c.h - top - m
    bar_h = max(8, round(c.s * 0.045))
    fn = fit_text(say("result.next", language), c.w - 2 * m, c.room(2, MIN_TEXT), c.small, MIN_TEXT, max_lines=2)

    def lay_out(side: int) -> tuple[Fitted, Fitted, Fitted, int]:
        """(condition, confidence, advice, advice top) with a photo ``side`` px wide (0: none)."""
        fc = _condition(c, condition, side, body_h)
        fs = _confidence_label(c, probability, c.w - (m + side + m if side else m) - m, language)
        advice_top = max(top + side, top + fc.height + m // 2 + fs.height + m // 2 + bar_h) + m
        room = c.h - m - fn.height - m // 2 - advice_top
        fa = fit_text(d.advice, c.w - 2 * m, room, c.body, c.min_text)
        if fa.truncated:  # too long to read whole at the minimum size: one short sentence instead
            short = screen.short_advice
            if short is None:
                short = labels.short_advice(d.best.slug, d.advice) if d.top else ""
            if short:
                fa = fit_text(short, c.w - 2 * m, room, c.body, c.min_text)
        return fc, fs, fa, advice_top

    # The photo only confirms which leaf was judged; the words need the room, so it stays small,
    # and it goes when any of them would not fit beside it at the readable minimum.
    side = int(min(body_h * 0.45, c.w * 0.3)) if screen.photo is not None else 0
    fc, fs, fa, advice_top = lay_out(side)
    if side and (fc.truncated or fs.truncated or fa.truncated):
        side = 0
        fc, fs, fa, advice_top = lay_out(side)
    if side:
        c.photo(screen.photo, m, top, side)
    x = m + side + m if side else m
    y = c.text(fc, x, top, colour)
    y = c.text(fs, x, y + m // 2, INK)
    c.bar(x, y + m // 2, c.w - x - m, bar_h, shown_percent(probability) / 100, colour)
    c.text(fn, m, c.h - m - fn.height, MUTED)
    c.text(fa, m, advice_top, INK)
    return c


def _condition(c: Canvas, condition: str, side: int, body_h: int) -> Fitted:
    width = c.w - (c.margin + side + c.margin if side else c.margin) - c.margin
    max_cond_h = max((side if side else body_h * 0.4) - c.s * 0.12, c.room(1, MIN_TEXT, bold=True))
    return fit_text(condition, width, max_cond_h, c.huge, c.min_text, bold=True, max_lines=3 if side else 2)


def _footer(c: Canvas, footer_text: str, top: int) -> tuple[int, int]:
    """The next-action footer of a retake or unknown screen; returns (footer top, body height)."""
    m = c.margin
    footer = fit_text(footer_text, c.w - 2 * m, max(c.s * 0.2, c.room(2, MIN_TEXT)), c.small, MIN_TEXT, max_lines=2)
    bottom = c.h - m - footer.height
    c.text(footer, m, bottom, MUTED)
    return bottom, bottom - m - top


def _photo_side(c: Canvas, photo: np.ndarray | None, body_h: int) -> int:
    return int(min(body_h * 0.45, c.w * 0.3)) if photo is not None else 0


def render_retake(screen: RetakeScreen, size: tuple[int, int], language: str = ENGLISH) -> Canvas:
    c = Canvas(size, language)
    top = c.header(say("retake.title", language), AMBER)
    m = c.margin
    default_headline, default_hint = reasons.retake_words(screen.reason.value if screen.reason else "", language)
    headline = screen.headline or default_headline
    hint = screen.hint or default_hint
    bottom, body_h = _footer(c, say("retake.next", language), top)

    def lay_out(side: int) -> tuple[Fitted, Fitted, int]:
        """(headline, hint, hint top) with a photo ``side`` px wide (0: none)."""
        x = m + side + m if side else m
        fh = fit_text(headline, c.w - x - m, side or body_h * 0.4, c.huge, c.min_text, bold=True, max_lines=3)
        y = max(top + fh.height, top + side) + m
        return fh, fit_text(hint, c.w - 2 * m, bottom - m - y, c.body, c.min_text), y

    side = _photo_side(c, screen.photo, body_h)
    fh, ft, y = lay_out(side)
    if side and (fh.truncated or ft.truncated):  # the words matter more than the thumbnail
        side = 0
        fh, ft, y = lay_out(side)
    if side:
        c.photo(screen.photo, m, top, side)
    c.text(fh, m + side + m if side else m, top, INK)
    c.text(ft, m, y, INK)
    return c


def render_unknown(screen: UnknownScreen, size: tuple[int, int], language: str = ENGLISH) -> Canvas:
    c = Canvas(size, language)
    top = c.header(say("unknown.title", language), PURPLE)
    m = c.margin
    default_headline, default_hint = reasons.unknown_words(screen.reason.value if screen.reason else "", language)
    headline = screen.headline or default_headline
    hint = screen.hint or default_hint
    bottom, body_h = _footer(c, say("unknown.next", language), top)

    def lay_out(side: int) -> tuple[Fitted | None, Fitted, Fitted, int]:
        """(crop, headline, hint, hint top) with a photo ``side`` px wide (0: none)."""
        x = m + side + m if side else m
        room = max(side, body_h * 0.5)  # the headline may run below the photo: it is what matters here
        fc, crop_h = None, 0
        if screen.crop:
            crop_room = max(c.s * 0.12, c.room(1, MIN_TEXT, bold=True))
            fc = fit_text(screen.crop, c.w - x - m, crop_room, c.body, MIN_TEXT, bold=True, max_lines=1)
            crop_h = fc.height + m // 2
            room = max(0, room - crop_h)
        fh = fit_text(headline, c.w - x - m, room, c.huge, c.min_text, bold=True, max_lines=3)
        y = max(top + crop_h + fh.height, top + side) + m
        return fc, fh, fit_text(hint, c.w - 2 * m, bottom - m - y, c.body, c.min_text), y

    side = _photo_side(c, screen.photo, body_h)
    fc, fh, ft, y = lay_out(side)
    if side and (fh.truncated or ft.truncated or (fc is not None and fc.truncated)):  # words before the thumbnail
        side = 0
        fc, fh, ft, y = lay_out(side)
    if side:
        c.photo(screen.photo, m, top, side)
    x = m + side + m if side else m
    words_y = top
    if fc is not None:
        words_y = c.text(fc, x, words_y, PURPLE) + m // 2
    c.text(fh, x, words_y, INK)
    c.text(ft, m, y, INK)
    return c


def render_fault(screen: FaultScreen, size: tuple[int, int], language: str = ENGLISH) -> Canvas:
    c = Canvas(size, language)
    top = c.header(screen.title, RED)
    m = c.margin
    bottom = c.h - m
    if screen.code:
        n = screen.code
        dot = max(8, round(c.body * 0.75))
        dots_w = min(n, 9) * dot * 1.5
        label = say("fault.red_blinks", language, count=n)
        room = max(c.s * 0.15, c.room(1, MIN_TEXT, bold=True))
        fl = fit_text(label, c.w - 3 * m - dots_w, room, c.body, MIN_TEXT, bold=True, max_lines=1)
        beside = not fl.truncated  # else the blinks go on a row of their own under the words
        if not beside:
            room = max(room, c.room(2, MIN_TEXT, bold=True))
            fl = fit_text(label, c.w - 2 * m, room, c.body, MIN_TEXT, bold=True, max_lines=2)
        row_h = max(fl.height, dot) if beside else fl.height + m // 2 + dot
        row_y = bottom - row_h
        c.text(fl, m, row_y + ((row_h - fl.height) // 2 if beside else 0), INK)
        dx = m + (fl.font.getlength(fl.lines[0]) if fl.lines else 0) + m if beside else m
        cy = row_y + row_h / 2 if beside else bottom - dot / 2
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
    return c


def render_progress(screen: ProgressScreen, size: tuple[int, int], language: str = ENGLISH) -> Canvas:
    c = Canvas(size, language)
    top = c.header(screen.title, BLUE)
    m = c.margin
    width = c.w - 2 * m
    total = max(0, screen.total)
    done = min(max(0, screen.done), total) if total else max(0, screen.done)
    count_text = say("export.records_progress", language, done=f"{done:,}", total=f"{total:,}")
    count_room = max(c.s * 0.2, c.room(2, MIN_TEXT, bold=True))
    count = fit_text(count_text, width, count_room, c.huge, MIN_TEXT, bold=True, max_lines=2)
    if screen.bytes_total:
        mb = say(
            "export.megabytes_progress",
            language,
            done=f"{screen.bytes_done / 1e6:.1f}",
            total=f"{screen.bytes_total / 1e6:.1f}",
        )
    else:
        mb = say("export.megabytes", language, done=f"{screen.bytes_done / 1e6:.1f}")
    fmb = fit_text(mb, width, max(c.s * 0.15, c.room(1, MIN_TEXT)), c.body, MIN_TEXT, max_lines=1)
    bar_h = max(10, round(c.s * 0.07))
    detail = (
        fit_text(screen.detail, width, max(c.s * 0.2, c.room(2, MIN_TEXT)), c.small, MIN_TEXT, max_lines=2)
        if screen.detail
        else None
    )
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
    return c


TONES: dict[str, RGB] = {"info": SLATE, "ok": GREEN, "warning": AMBER, "error": RED}


def render_message(screen: MessageScreen, size: tuple[int, int], language: str = ENGLISH) -> Canvas:
    c = Canvas(size, language)
    top = c.header(screen.title, TONES.get(screen.tone, SLATE))
    m = c.margin
    if screen.body:
        fb = fit_text(screen.body, c.w - 2 * m, c.h - m - top, c.huge, c.min_text, bold=True)
        y = top + max(0, (c.h - m - top - fb.height) // 2)
        c.text(fb, m, y, INK, width=c.w - 2 * m, align="center")
    return c


_RENDERERS: dict[type, Callable[..., Canvas]] = {
    ReadyScreen: render_ready,
    WorkingScreen: render_working,
    ResultScreen: render_result,
    RetakeScreen: render_retake,
    UnknownScreen: render_unknown,
    FaultScreen: render_fault,
    ProgressScreen: render_progress,
    MessageScreen: render_message,
}


def draw_screen(screen: Screen, size: tuple[int, int], language: str = ENGLISH) -> Canvas:
    """The drawn canvas, which also knows the font sizes it used (tests hold the readable minimum)."""
    try:
        renderer = _RENDERERS[type(screen)]
    except KeyError:
        raise TypeError(f"no renderer for {type(screen).__name__}") from None
    return renderer(screen, size, language)


def render(screen: Screen, size: tuple[int, int], language: str = ENGLISH) -> np.ndarray:
    """The screen as an RGB uint8 array of shape (height, width, 3) for a display of ``size`` (w, h).

    ``language`` is for the screen's own words; the words a screen carries (a diagnosis's, a
    fault's) were chosen in that language by whoever built it.
    """
    return draw_screen(screen, size, language).array()
