"""Every language the appliance offers: complete, drawable with the shipped fonts, and fitting the smallest panel.

Issue 12: `language = "fr"` passed `config check` and fell back to English. Now each offered
language has words for every class, screen and reason, and every one of them is drawn here on
the smallest screen: a glyph the font lacks, or text cut off or under 16 px, fails.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from fontTools.ttLib import TTFont

from appliance import export_screens, labels, selftest, words
from appliance import screens as S
from appliance.errors import ExportError
from appliance.export.exporter import ExportReport, Progress
from appliance.result import Ranked, RetakeReason, UnknownReason
from appliance.screens.draw import MIN_TEXT
from appliance.screens.render import draw_screen
from appliance.screens.text import font_file
from appliance.storage_rule import MIB, storage_status
from appliance.sync.state import SyncState, SyncStatus
from leaf_wire import reasons
from tests.core.test_screens import diagnosis, leaf_photo

LANGUAGES = ("en", "fr", "es", "pt", "sw", "hi")
SMALLEST = (240, 240)
FAULTS = ("config", "model", "storage", "unexpected", "camera", "save")
NOT_DRAWN = {"\u200c", "\u200d"}  # joiners steer the shaping; they have no glyph of their own


@dataclasses.dataclass(frozen=True)
class Limits:
    warn_below_mb: int = 500
    refuse_below_mb: int = 100


def test_the_offered_languages_are_exactly_the_translated_ones() -> None:
    assert words.known_languages() == tuple(sorted(LANGUAGES))


@pytest.mark.parametrize("language", LANGUAGES[1:])
def test_each_translation_is_complete_and_marked_unreviewed(language: str) -> None:
    english, other = words.catalog()["en"], words.catalog()[language]
    assert set(other) == set(english)
    for key, text in english.items():
        if isinstance(text, str) and key != "language.name":
            assert isinstance(other[key], str) and other[key].strip(), key
            assert words.placeholders(other[key]) == words.placeholders(text), key
    assert other["language.reviewed"] is False and not words.reviewed(language)
    table = labels._table()
    for slug in labels.known_slugs():
        entry = table[slug][language]
        assert entry.get("reviewed") is False, slug  # no agronomist has read it yet
        for key in ("crop", "condition", "advice", "short_advice"):
            if table[slug]["en"].get(key):  # no leaf and other plants have no crop, in any language
                assert str(entry.get(key, "")).strip(), (slug, key)
    for verdict in ("retake", "unknown"):
        for code in (*reasons.reason_codes(verdict), reasons.FALLBACK):
            ours = reasons._table()[language][verdict][code]
            assert ours["what"].strip() and ours["hint"].strip(), (verdict, code)
            assert ours != reasons._table()["en"][verdict][code]  # translated, not copied


def every_string(language: str) -> list[str]:
    """What the language says anywhere: messages, class words, reason words."""
    out = [v for k, v in words.catalog()[language].items() if isinstance(v, str)]
    for slug in labels.known_slugs():
        w = labels.label(slug, language)
        out += [w.crop, w.condition, w.advice, w.short_advice]
    for verdict in ("retake", "unknown"):
        for code in (*reasons.reason_codes(verdict), reasons.FALLBACK):
            out += list(reasons._words(verdict, code, language))
    return out


def _cmap(path: Path) -> set[int]:
    return set(TTFont(str(path)).getBestCmap())


def missing_glyphs(text: str) -> set[str]:
    """Characters of ``text`` that the font the screens would pick for it (regular or bold) cannot draw."""
    drawable = _cmap(font_file(text, False)) & _cmap(font_file(text, True))
    return {ch for ch in text if not ch.isspace() and ch not in NOT_DRAWN and ord(ch) not in drawable}


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_fonts_have_every_glyph_of_every_string(language: str) -> None:
    missing = {text: sorted(missing_glyphs(text)) for text in every_string(language) if missing_glyphs(text)}
    assert missing == {}


def test_a_hindi_line_with_a_latin_word_is_drawn_whole() -> None:
    """An error from the software stays in English: the Devanagari font must draw it too."""
    assert missing_glyphs("त्रुटि: USB stick /dev/sda1 read-only") == set()
    assert font_file("त्रुटि") != font_file("error")  # Latin screens keep DejaVu's line height


def screens_in(language: str) -> dict[str, S.Screen]:
    """Every screen the appliance draws, with the words it would have in ``language``."""
    say = words.say
    now = datetime(2026, 5, 1, 14, 5)
    synced = SyncState(SyncStatus.SYNCED, waiting=12, last_success=datetime(2026, 5, 1, 13, 2, tzinfo=UTC))
    crops = tuple(labels.crop_name(c, language) for c in ("apple", "tomato"))
    low = storage_status(420 * MIB, Limits()).short(language)
    cases: dict[str, S.Screen] = {
        "ready": S.ReadyScreen("2.0.0", 1234, 11_730.2, now, synced.line(now, language), crops=crops),
        "ready-all-crops": S.ReadyScreen(
            "2.0.0", 5, 238.4, now, SyncState(SyncStatus.OFFLINE, 37).line(now, language), crops=()
        ),
        "ready-storage": S.ReadyScreen("2.0.0", 5, 420.0, now, low, warning=True, crops=crops),
        "starting": S.WorkingScreen(say("working.loading_model", language), say("working.starting", language)),
        "looking": S.WorkingScreen(),
        "stopped": S.MessageScreen(say("stopped.title", language), say("stopped.body", language)),
        "selftest": S.MessageScreen(say("selftest.title", language), say("selftest.checking", language)),
        "full": S.FaultScreen(
            say("fault.full_title", language), say("fault.full_problem", language), say("fault.full_todo", language), 4
        ),
    }
    for kind in FAULTS:
        cases[f"fault-{kind}"] = S.FaultScreen(
            say(f"fault.{kind}_title", language),
            "camera not found: /dev/video0",
            say(f"fault.{kind}_todo", language),
            3,
        )
    for slug in labels.known_slugs():
        if labels.is_crop_class(slug):
            w = labels.label(slug, language)
            d = diagnosis(healthy=w.healthy, advice=w.advice, crop=w.crop, condition=w.condition)
            cases[f"result-{slug}"] = S.ResultScreen(dataclasses.replace(d, top=(Ranked(slug, 0.91),)), leaf_photo())
    for r in RetakeReason:
        cases[f"retake-{r.value}"] = S.RetakeScreen(r, leaf_photo())
    for u in UnknownReason:
        what, hint = reasons.unknown_words(u.value, language)
        crop = labels.crop_name("apple", language) if u is UnknownReason.UNKNOWN_CONDITION else ""
        cases[f"unknown-{u.value}"] = S.UnknownScreen(what, hint, crop, u, leaf_photo())
    for phase in ("preparing", "writing", "verifying", "finishing"):
        p = Progress(phase, 30, 80, 45_600_000, 180_000_000, records_done=1234, records_total=4321)
        cases[f"export-{phase}"] = export_screens.progress_screen(p, language)
    done = ExportReport(target=Path("/media/x"), stick_id="s", full=False, rows=1234, photos=1200, ejected=True)
    waiting = dataclasses.replace(done, ejected=False, eject_message="busy")
    already = ExportReport(target=Path("/media/x"), stick_id="s", full=False, already_on_stick=4321, ejected=True)
    empty = ExportReport(target=Path("/media/x"), stick_id="s", full=False, flushed_folder=True)
    for name, report in (("done", done), ("wait", waiting), ("already", already), ("empty", empty)):
        cases[f"export-{name}"] = export_screens.report_screen(report, language)
    cases["export-failed"] = export_screens.failure_screen(ExportError("The USB stick is read-only."), language)
    cases["export-no-stick"] = export_screens.no_stick_screen(language)
    checks = [selftest.Check("camera", selftest.PASS, ""), selftest.Check("leds", selftest.SKIP, "")]
    cases["selftest-passed"] = selftest.outcome_screen(checks[:1], language)
    cases["selftest-skipped"] = selftest.outcome_screen(checks, language)
    cases["selftest-failed"] = selftest.outcome_screen([selftest.Check("camera", selftest.FAIL, "")], language)
    return cases


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_screen_in_every_language_fits_the_smallest_panel(language: str) -> None:
    problems = {}
    for name, screen in screens_in(language).items():
        c = draw_screen(screen, SMALLEST, language)
        drawn = " ".join(c.texts)
        if c.cut or c.smallest_font is None or c.smallest_font < MIN_TEXT or missing_glyphs(drawn):
            problems[name] = {"cut": c.cut, "smallest": c.smallest_font, "missing": sorted(missing_glyphs(drawn))}
    assert problems == {}


@pytest.mark.parametrize("language", LANGUAGES[1:])
def test_a_translated_screen_says_nothing_in_english(language: str) -> None:
    english = {w for name in ("ready", "retake-blurred", "export-done") for w in screens_text("en", name).split()}
    for name in ("ready", "retake-blurred", "export-done", "unknown-other_plant", "result-tomato__late_blight"):
        ours = screens_text(language, name)
        assert ours != screens_text("en", name)
        assert not {"Ready", "Press", "button", "records", "Hold"} & set(ours.split()), (name, ours)
    assert english  # the English words the check looks for are there to find


def screens_text(language: str, name: str) -> str:
    return " ".join(draw_screen(screens_in(language)[name], SMALLEST, language).texts)


def test_hindi_is_drawn_in_devanagari_with_its_own_font() -> None:
    c = draw_screen(screens_in("hi")["ready"], SMALLEST, "hi")
    assert any("\u0900" <= ch <= "\u097f" for ch in " ".join(c.texts))
    frame = c.array()
    assert frame.shape == (240, 240, 3) and (frame < 100).any()  # ink, not an empty screen
    assert not np.array_equal(frame, draw_screen(screens_in("en")["ready"], SMALLEST, "en").array())
