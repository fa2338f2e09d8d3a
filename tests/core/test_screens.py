"""Screens drawn from plain data, at every supported display size."""

from __future__ import annotations

from datetime import datetime

import cv2
import numpy as np
import pytest
from PIL import Image

from appliance import screens as S
from appliance.result import Diagnosis, Quality, Ranked, RetakeReason, Timings, Verdict
from appliance.screens.draw import Canvas, human_bytes
from appliance.screens.render import draw_screen
from leaf_wire import reasons

SIZES = [(240, 240), (320, 240), (480, 320), (800, 480)]
ADVICE = (
    "Remove the lowest infected leaves and burn them. Spray a copper fungicide every 7 to 10 days "
    "in wet weather. Water the soil, not the leaves, and rotate crops next season."
)


def diagnosis(healthy=False, advice=ADVICE, crop="Tomato", condition="Early blight", p=0.87) -> Diagnosis:
    return Diagnosis(
        Verdict.DIAGNOSIS,
        None,
        (Ranked("tomato_early_blight", p),),
        Quality(120, 0, 0, 100, 0.5),
        Timings(),
        "v1",
        "0" * 64,
        crop=crop,
        condition=condition,
        advice=advice,
        healthy=healthy,
    )


def leaf_photo() -> np.ndarray:
    photo = np.full((480, 640, 3), (40, 120, 60), np.uint8)
    cv2.ellipse(photo, (320, 240), (180, 110), 30, 0, 360, (30, 180, 60), -1)
    return photo


def every_screen() -> dict[str, S.Screen]:
    return {
        "ready": S.ReadyScreen("v1.2.0", 1234, 11_730.2, datetime(2024, 5, 1, 14, 5), "Last export 3 days ago"),
        "ready-warning": S.ReadyScreen("v1.2.0", 5, 238.4, None, "Storage almost full", warning=True),
        "ready-crops": S.ReadyScreen("v1.2.0", 5, 238.4, None, "Synced 14:02", crops=("Apple", "Pepper, bell")),
        "ready-all-crops": S.ReadyScreen("v1.2.0", 5, 238.4, crops=()),
        "working": S.WorkingScreen("Checking the photo"),
        "result": S.ResultScreen(diagnosis(), leaf_photo()),
        "result-no-photo": S.ResultScreen(diagnosis(healthy=True, condition="Healthy", advice="No action needed.")),
        "retake": S.RetakeScreen(RetakeReason.BLURRED, leaf_photo()),
        "retake-no-photo": S.RetakeScreen(RetakeReason.NO_LEAF),
        "unknown-condition": S.UnknownScreen(
            "Not a condition this model knows", "Show this leaf to your field adviser.", "Apple", photo=leaf_photo()
        ),
        "unknown-plant": S.UnknownScreen(
            "I don't know this plant", "It is not a crop this appliance knows. Show the plant to your field adviser."
        ),
        "fault": S.FaultScreen("Camera problem", "The camera is not responding.", "Check the cable.", 2),
        "progress": S.ProgressScreen("Copying to USB", 312, 1234, 45_600_000, 180_000_000, "Do not remove it"),
        "message": S.MessageScreen("Stopped", "The appliance has stopped."),
    }


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", list(every_screen()))
def test_every_screen_renders_at_every_size(name, size):
    w, h = size
    frame = S.render(every_screen()[name], size)
    assert frame.shape == (h, w, 3) and frame.dtype == np.uint8
    header = Canvas(size).header_h
    body = frame[header + 2 :]
    assert (body != 255).any(axis=2).mean() > 0.01  # something drawn below the header
    packed = (frame[..., 0].astype(np.uint32) << 16) | (frame[..., 1].astype(np.uint32) << 8) | frame[..., 2]
    assert len(np.unique(packed)) > 3


def test_header_colour_says_healthy_or_disease():
    sick = S.render(S.ResultScreen(diagnosis(healthy=False)), (480, 320))
    well = S.render(S.ResultScreen(diagnosis(healthy=True, condition="Healthy")), (480, 320))
    assert tuple(sick[2, 2]) == S.RED
    assert tuple(well[2, 2]) == S.GREEN
    retake = S.render(S.RetakeScreen(RetakeReason.TOO_DARK), (480, 320))
    assert tuple(retake[2, 2]) == S.AMBER
    unknown = S.render(S.UnknownScreen("I don't know this plant", "Ask."), (480, 320))
    assert tuple(unknown[2, 2]) == S.PURPLE


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_long_unknown_and_crop_lists_stay_inside_the_frame(size):
    w, h = size
    m, header = Canvas(size).margin, Canvas(size).header_h
    long = ("Xanthomonascampestrispvvesicatoria and more words " * 30).strip()
    frames = [
        S.render(S.UnknownScreen(long, long, long, photo=leaf_photo()), size),
        S.render(S.ReadyScreen("v1", 1, 10.0, crops=tuple(f"Crop number {n}" for n in range(40))), size),
    ]
    for frame in frames:
        assert (frame[h - m + 1 :] == 255).all()
        assert (frame[:, w - m + 1 :][header + 1 :] == 255).all()
        assert (frame[:, : m - 1][header + 1 :] == 255).all()


def test_confidence_bar_follows_the_probability():
    def red_in_bar_row(p):
        frame = S.render(S.ResultScreen(diagnosis(p=p)), (800, 480))
        return int((frame == S.RED).all(axis=2).sum())

    assert red_in_bar_row(0.95) > red_in_bar_row(0.40) > 0


def test_photo_thumbnail_is_shown_in_true_colour():
    blue_bgr = np.zeros((300, 400, 3), np.uint8)
    blue_bgr[..., 0] = 255  # pure blue in BGR order, as the camera delivers it
    frame = S.render(S.ResultScreen(diagnosis(), blue_bgr), (480, 320))
    assert (frame == (0, 0, 255)).all(axis=2).sum() > 1000
    assert (frame == (255, 0, 0)).all(axis=2).sum() < 50  # not swapped into red


def test_each_retake_reason_has_its_own_words():
    frames = [S.render(S.RetakeScreen(reason), (320, 240)) for reason in RetakeReason]
    assert set(reasons.reason_codes("retake")) == {r.value for r in RetakeReason}
    for i in range(len(frames)):
        for j in range(i + 1, len(frames)):
            assert not np.array_equal(frames[i], frames[j])
    custom = S.render(S.RetakeScreen(RetakeReason.BLURRED, headline="Foto borrosa", hint="No se mueva."), (320, 240))
    assert not np.array_equal(custom, frames[1])


def test_ready_shows_the_time_and_a_warning_band():
    at_2 = S.render(S.ReadyScreen(now=datetime(2024, 1, 1, 14, 5)), (480, 320))
    at_9 = S.render(S.ReadyScreen(now=datetime(2024, 1, 1, 9, 31)), (480, 320))
    header = Canvas((480, 320)).header_h
    assert not np.array_equal(at_2[:header], at_9[:header])
    assert np.array_equal(at_2[header:], at_9[header:])
    warn = S.render(S.ReadyScreen(status="Storage almost full", warning=True), (480, 320))
    assert (warn[-3:] == S.WARNING_BAND).all()


def test_progress_bar_fills():
    def blue(done):
        return int((S.render(S.ProgressScreen("Copying", done, 10), (480, 320)) == S.BLUE).all(axis=2).sum())

    assert blue(10) > blue(5) > blue(0)
    S.render(S.ProgressScreen("Copying", 5, 0), (480, 320))  # zero total: no division error


def _glyph(text: str) -> np.ndarray:
    return S.render(S.MessageScreen("x", text), (320, 240))


def test_non_ascii_text_renders_real_glyphs_not_tofu():
    tofu = _glyph("中")  # DejaVu Sans has no CJK: the .notdef box
    assert np.array_equal(tofu, _glyph("丁"))  # every missing glyph draws the same box
    for ch in ("é", "Ж", "λ", "ß"):
        assert not np.array_equal(_glyph(ch), tofu), ch
    assert not np.array_equal(_glyph("é"), _glyph("e"))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_long_text_stays_inside_the_frame(size):
    w, h = size
    huge = ("Spray " + "Xanthomonascampestrispvvesicatoria" * 3 + " and more words ") * 60
    frame = S.render(S.ResultScreen(diagnosis(advice=huge, condition=huge, crop=huge), leaf_photo()), size)
    m = Canvas(size).margin
    assert (frame[h - m + 1 :] == 255).all()  # bottom margin untouched
    assert (frame[:, w - m + 1 :][Canvas(size).header_h + 1 :] == 255).all()  # right margin below the header
    assert (frame[:, : m - 1][Canvas(size).header_h + 1 :] == 255).all()  # left margin


def test_fit_text_keeps_lines_in_the_box_and_marks_the_cut():
    text = ADVICE * 5 + " Supercalifragilisticexpialidocious" * 3
    fitted = S.fit_text(text, 200, 120, 30, 14)
    assert fitted.truncated and fitted.lines[-1].endswith(S.ELLIPSIS)
    assert fitted.font.size == 14
    assert fitted.height <= 120
    assert all(fitted.font.getlength(line) <= 200 for line in fitted.lines)

    short = S.fit_text("Early blight", 400, 100, 40, 12)
    assert not short.truncated and short.font.size == 40 and short.lines == ("Early blight",)

    one_word = S.fit_text("Фитофтороз", 120, 100, 60, 12, bold=True)  # shrinks before cutting a word
    assert not one_word.truncated and S.ELLIPSIS not in one_word.lines[0]
    assert one_word.font.getlength(one_word.lines[0]) <= 120

    assert S.fit_text("anything", 100, 5, 20, 12).lines == ()  # no room: draws nothing rather than overflow


def test_fonts_are_cached_and_shipped_with_their_licence():
    assert S.font(20) is S.font(20)
    assert S.font(20, bold=True) is not S.font(20)
    assert S.REGULAR_FONT.is_file() and S.BOLD_FONT.is_file()
    assert "Bitstream" in (S.FONT_DIR / "LICENSE-DejaVu.txt").read_text()


def test_unknown_screen_and_tiny_size_are_refused_clearly():
    with pytest.raises(TypeError, match="no renderer for str"):
        S.render("ready", (320, 240))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="too small"):
        S.render(S.WorkingScreen(), (40, 30))


def test_save_samples_for_a_look(tmp_path):
    """Writes PNGs of every screen (open them to review the layout); checks they decode back."""
    for name, screen in every_screen().items():
        for size in ((240, 240), (800, 480)):
            path = tmp_path / f"{name}-{size[0]}x{size[1]}.png"
            Image.fromarray(S.render(screen, size)).save(path)
            assert Image.open(path).size == size


def test_storage_is_shown_in_decimal_units():
    assert [human_bytes(n) for n in (999, 950_000_000, 12_300_000_000)] == ["999 B", "950 MB", "12.3 GB"]


def test_confidence_is_never_shown_as_certain():
    """A calibrated 99.8% reads "99% sure", like 99.0%; 100% would promise what no model can."""
    almost = S.render(S.ResultScreen(diagnosis(p=0.998)), (480, 320))
    ninety_nine = S.render(S.ResultScreen(diagnosis(p=0.990)), (480, 320))
    ninety = S.render(S.ResultScreen(diagnosis(p=0.90)), (480, 320))
    assert np.array_equal(almost, ninety_nine)
    assert not np.array_equal(almost, ninety)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_header_band_shows_its_title(size):
    """A regression drew the title only when it had been cut: every header band was empty."""
    for screen, band in ((S.ReadyScreen("v1"), S.BLUE), (S.ResultScreen(diagnosis()), S.RED)):
        c = draw_screen(screen, size)
        frame = c.array()[: c.header_h, : c.w // 2]
        ink = (frame == (255, 255, 255)).all(axis=2).sum()
        assert (frame == band).all(axis=2).sum() > ink > 30, (type(screen).__name__, ink)
