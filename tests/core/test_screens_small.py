"""Readable on the smallest panels: no text below 16 px and nothing cut off, at every supported size."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import pytest

from appliance import labels
from appliance import screens as S
from appliance.result import Ranked, RetakeReason, UnknownReason
from appliance.screens.draw import MIN_TEXT, Canvas
from appliance.screens.render import draw_screen
from tests.core.test_screens import SIZES, diagnosis, leaf_photo


def class_result(slug: str, photo: bool = True) -> S.ResultScreen:
    words = labels.label(slug)
    d = diagnosis(healthy=words.healthy, advice=words.advice, crop=words.crop, condition=words.condition)
    return S.ResultScreen(dataclasses.replace(d, top=(Ranked(slug, 0.91),)), leaf_photo() if photo else None)


def small_screen_cases() -> dict[str, S.Screen]:
    crop_classes = [s for s in labels.known_slugs() if labels.is_crop_class(s)]
    longest = max(crop_classes, key=lambda s: len(labels.label(s).advice))
    cases: dict[str, S.Screen] = {
        "ready": S.ReadyScreen("v1.2.0", 1234, 11_730.2, datetime(2024, 5, 1, 14, 5), "Last export 3 days ago"),
        "ready-crops": S.ReadyScreen("v1.2.0", 5, 238.4, datetime(2024, 5, 1, 9, 0), crops=("Apple", "Tomato")),
        "result-longest-advice": class_result(longest),
        "result-longest-no-photo": class_result(longest, photo=False),
        "unknown-plant": S.UnknownScreen.of(
            dataclasses.replace(
                diagnosis(), condition="I don't know this plant", advice=labels.label("other__plant").advice
            )
        ),
        "unknown-condition": S.UnknownScreen(
            "Not a condition this model knows",
            "Show this leaf to your field adviser.",
            "Apple",
            UnknownReason(next(iter(UnknownReason)).value),
            leaf_photo(),
        ),
        "export": S.ProgressScreen("Copying to USB", 312, 1234, 45_600_000, 180_000_000, "Do not remove the stick"),
        "fault": S.FaultScreen(
            "Camera problem", "The camera is not responding.", "Check the camera cable, then restart.", 2
        ),
    }
    cases.update({f"result-{slug}": class_result(slug) for slug in crop_classes})
    cases.update({f"retake-{r.value}": S.RetakeScreen(r, leaf_photo()) for r in RetakeReason})
    return cases


CASES = small_screen_cases()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", list(CASES))
def test_text_is_at_least_16_px_and_nothing_is_cut(name, size):
    c = draw_screen(CASES[name], size)
    assert c.smallest_font is not None and c.smallest_font >= MIN_TEXT == 16, (name, size, c.font_sizes)
    assert c.cut == [], c.cut  # the full advice, or the class's short advice, fits whole
    frame, (w, h), m = c.array(), size, c.margin
    assert (frame[h - m + 1 :] == 255).all()  # bottom margin untouched
    header = Canvas(size).header_h
    assert (frame[header + 1 :, w - m + 1 :] == 255).all()  # right margin below the header
    assert (frame[header + 1 :, : m - 1] == 255).all()


def test_small_panels_use_the_short_advice_and_large_ones_the_full_text():
    screen = CASES["result-longest-advice"]
    words = labels.label(screen.diagnosis.best.slug)
    assert words.short_advice in draw_screen(screen, (240, 240)).texts
    assert words.advice in draw_screen(screen, (800, 480)).texts


def test_every_class_has_a_one_sentence_short_advice():
    for slug in labels.known_slugs():
        words = labels.label(slug)
        assert words.short_advice, slug
        assert len(words.short_advice) < len(words.advice), slug
        assert ". " not in words.short_advice, slug


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_every_screen_says_what_to_do_next(size):
    def words(name: str) -> str:
        return " ".join(draw_screen(CASES[name], size).texts)

    assert "press the button" in words("ready").lower()
    assert "Hold the button down to export to USB." in words("ready")
    assert "Press the button for the next leaf." in words("result-longest-advice")
    assert "Press the button for the next leaf." in words("result-tomato__healthy")
    assert "Press the button for a new photo." in words("retake-blurred")
    assert "Press the button for the next leaf." in words("unknown-plant")
    assert "Check the camera cable, then restart." in words("fault")
