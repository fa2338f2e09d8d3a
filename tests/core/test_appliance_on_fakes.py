"""The daemon's state machine on in-memory fakes only: no camera, pins, SQLite, model, stick or network."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from appliance import screens
from appliance.daemon import State
from appliance.ports import LedPattern, Press
from appliance.result import RetakeReason, UnknownReason, Verdict
from tests.core.conftest import Rig, diagnosis


def test_start_up_shows_ready_and_tells_the_service_manager(rig: Rig) -> None:
    rig.start().wait_for(State.IDLE)
    assert "READY=1" in rig.notifier.events and rig.sync.started
    assert rig.leds.shown[0] is LedPattern.BUSY and rig.leds.shown[-1] is LedPattern.READY
    assert rig.screen_names()[0] == "WorkingScreen" and rig.screen_names()[-1] == "ReadyScreen"


def test_a_press_diagnoses_records_and_shows_the_result(rig: Rig) -> None:
    rig.start().wait_for(State.IDLE)
    cycle = rig.press()
    assert (cycle.verdict, cycle.record_id, cycle.error) == ("diagnosis", "rec-1", "")
    assert len(rig.store.rows) == 1 and rig.sync.new_records == 1
    assert LedPattern.HEALTHY in rig.leds.shown and rig.screen_names()[-1] == "ResultScreen"
    assert {"capture_ms", "inference_ms", "commit_ms", "total_ms"} <= set(cycle.ms)
    rig.wait_for(State.IDLE)  # the result times out back to the ready screen


def test_a_retake_and_an_unknown_have_their_own_screen_and_leds(rig: Rig) -> None:
    rig.diagnoser.answers = [
        diagnosis(Verdict.RETAKE, RetakeReason.BLURRED),
        diagnosis(Verdict.UNKNOWN, UnknownReason.OTHER_PLANT),
    ]
    rig.start().wait_for(State.IDLE)
    assert rig.press().verdict == "retake"
    assert rig.leds.shown[-1] is LedPattern.RETAKE and rig.screen_names()[-1] == "RetakeScreen"
    assert rig.press().verdict == "unknown"
    assert rig.leds.shown[-1] is LedPattern.UNKNOWN and rig.screen_names()[-1] == "UnknownScreen"
    assert [d.verdict for d, _ in rig.store.rows] == [Verdict.RETAKE, Verdict.UNKNOWN]  # both kept


def test_a_press_while_busy_is_ignored_not_queued(rig: Rig) -> None:
    rig.diagnoser.gate = threading.Event()
    rig.start().wait_for(State.IDLE)
    before = rig.app.cycles
    assert rig.button.on_press is not None
    rig.button.on_press(Press.SHORT)
    rig.wait_for(State.CLASSIFYING)
    rig.button.on_press(Press.SHORT)  # the farmer presses again while it works
    rig.diagnoser.gate.set()
    assert rig.app.wait_for_cycle(before, 5) is not None
    rig.wait_for(State.SHOWING_RESULT)
    assert rig.app.ignored_presses == 1 and len(rig.store.rows) == 1


def test_a_missing_camera_is_a_fault_that_clears_by_itself(rig: Rig) -> None:
    rig.camera.broken = "no camera on the CSI port"
    rig.start().wait_for(State.FAULT)
    assert rig.app.fault is not None and rig.app.fault.kind == "camera"
    assert rig.leds.shown[-1] is LedPattern.FAULT_CAMERA and rig.app.fault.code == 2
    assert "READY=1" not in rig.notifier.events
    rig.camera.broken = ""  # the cable is pushed back in: the retry brings it up
    rig.wait_for(State.IDLE)
    assert rig.app.fault is None and "READY=1" in rig.notifier.events


def test_a_broken_model_is_a_model_fault_and_a_press_retries(rig: Rig) -> None:
    rig.model_error.append("leafnet-int8.onnx: checksum mismatch")
    rig.start().wait_for(State.FAULT)
    assert rig.app.fault is not None and rig.app.fault.kind == "model"
    assert rig.leds.shown[-1] is LedPattern.FAULT_MODEL
    cycle = rig.press()
    assert "checksum mismatch" in cycle.error and rig.store.rows == []
    rig.model_error.clear()
    rig.press()  # a press during a fault is a request to try again now
    assert rig.app.fault is None


def test_storage_full_refuses_the_photo_and_a_failed_save_shows_nothing_as_saved(rig: Rig) -> None:
    rig.start().wait_for(State.IDLE)
    rig.store.free = 50 * 2**20  # below the 100 MB floor
    assert rig.press().error == "storage full"
    assert rig.app.fault is not None and rig.app.fault.kind == "storage" and rig.store.rows == []
    rig.store.free = 10 * 2**30
    rig.wait_for(State.IDLE)
    rig.store.fail = "No space left on device"
    cycle = rig.press()
    assert "No space left" in cycle.error and rig.screen_names()[-1] == "FaultScreen"
    assert "ResultScreen" not in rig.screen_names() and rig.store.rows == []


def test_storage_almost_full_warns_on_the_ready_screen_and_frees_exported_photos(rig: Rig) -> None:
    rig.store.free = 300 * 2**20  # below the 500 MB warning, above the floor
    rig.start().wait_for(State.IDLE)
    ready = rig.app.screens_shown[-1]
    assert getattr(ready, "warning", False) and "Storage almost full" in getattr(ready, "status", "")
    rig.press()
    assert rig.usb.made_room == 1 and len(rig.store.rows) == 1


def test_a_long_press_exports_to_the_stick_or_says_there_is_none(rig: Rig, tmp_path: Path, caplog) -> None:
    caplog.set_level("INFO", logger="appliance")
    rig.start().wait_for(State.IDLE)
    assert rig.press(Press.LONG).verdict == "no_usb_stick" and rig.usb.exported == 0
    rig.wait_for(State.IDLE)
    rig.usb.stick = tmp_path
    cycle = rig.press(Press.LONG)
    assert cycle.verdict == "exported" and rig.usb.exported == 1 and rig.usb.made_room == 1
    assert LedPattern.EXPORTING in rig.leds.shown and rig.leds.shown[-1] is LedPattern.SAFE_TO_REMOVE
    assert "ProgressScreen" in rig.screen_names() and rig.screen_names()[-1] == "MessageScreen"
    assert f"export to {tmp_path}: " in caplog.text and "safe to remove" in caplog.text  # logged like a diagnosis


def test_a_failed_export_says_so_and_keeps_working(rig: Rig, tmp_path: Path) -> None:
    rig.usb.stick, rig.usb.fail = tmp_path, "the stick was pulled out"
    rig.start().wait_for(State.IDLE)
    cycle = rig.press(Press.LONG)
    assert "pulled out" in cycle.error and rig.leds.shown[-1] is LedPattern.RETAKE
    rig.wait_for(State.IDLE)
    assert rig.press().verdict == "diagnosis"


def test_stop_closes_every_part_and_says_so(rig: Rig) -> None:
    rig.start().wait_for(State.IDLE)
    rig.stop()
    assert rig.app.state is State.STOPPED and rig.notifier.events[-1] == "STOPPING=1"
    assert rig.sync.stopped and rig.leds.shown[-1] is LedPattern.OFF
    assert rig.display.frames >= 2 and rig.display.wrong_shapes == []
    assert all(part.closed for part in (rig.camera, rig.button, rig.leds, rig.display, rig.store))


def test_no_screen_keeps_a_full_camera_frame(rig: Rig) -> None:
    """At the Camera Module 3's 2304x1296 each kept frame was 9 MB, 64 of them kept: RSS grew to 402 MB."""
    rig.camera.frame = np.full((1296, 2304, 3), 90, np.uint8)
    rig.diagnoser.answers = [diagnosis(Verdict.DIAGNOSIS), diagnosis(Verdict.RETAKE, RetakeReason.BLURRED)]
    rig.start().wait_for(State.IDLE)
    rig.press()
    rig.press()
    photos = [s.photo for s in rig.app.screens_shown if getattr(s, "photo", None) is not None]
    assert len(photos) == 2
    for photo in photos:
        assert photo.shape == (160, 160, 3)  # the centre square, as large as the 480x320 screen draws it
    assert rig.store.rows[0][1].startswith(b"\xff\xd8")  # the stored photo is still the whole frame, encoded


def test_two_presses_at_once_get_one_result_and_one_busy_answer(rig: Rig) -> None:
    """The second `press --wait` was ignored but answered 'ok' with the first press's record id."""
    rig.diagnoser.gate = threading.Event()
    rig.start().wait_for(State.IDLE)
    answers: list[str] = []
    assert rig.button.on_press is not None
    press = rig.button.on_press
    first = threading.Thread(target=lambda: answers.append(rig.app.result_waiter(lambda: press(Press.SHORT), 5)))
    first.start()
    rig.wait_for(State.CLASSIFYING)
    second = rig.app.result_waiter(lambda: press(Press.SHORT), 5)  # while the first is still working
    rig.diagnoser.gate.set()
    first.join(5)
    assert second.startswith("error: busy") and answers[0].startswith("ok ") and '"rec-1"' in answers[0]
    assert len(rig.store.rows) == 1 and rig.app.ignored_presses == 1


def test_a_press_queued_but_not_yet_started_makes_the_next_one_busy(rig: Rig) -> None:
    app = rig.app  # not started: nothing takes the queued press
    assert app.on_press(Press.SHORT) is True
    assert app.on_press(Press.SHORT) is False and app.ignored_presses == 1


def test_a_fault_on_a_french_appliance_is_french_on_screen_and_english_for_the_service_manager(rig: Rig) -> None:
    """Ansible's verify waits for READY unless systemd's status names a fault that cannot clear (in English)."""
    rig.app.language = "fr"
    rig.model_error.append("leafnet-int8.onnx: checksum mismatch")
    rig.start().wait_for(State.FAULT)
    shown = rig.app.screens_shown[-1]
    assert isinstance(shown, screens.FaultScreen) and shown.title == "Problème de modèle"
    assert "STATUS=fault: Model problem: leafnet-int8.onnx: checksum mismatch" in rig.notifier.events
    assert rig.press().error.startswith("Model problem: ")
