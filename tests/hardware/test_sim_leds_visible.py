"""Simulated LEDs cannot be looked at, so each change is one short line in the log or the terminal."""

from __future__ import annotations

import logging

from appliance.hardware.sim_leds import SimulatedLeds
from appliance.ports import LedPattern
from appliance.selftest import run_selftest
from tests.helpers.daemon import simulated_config


def test_each_pattern_change_is_one_info_line(caplog):
    with caplog.at_level(logging.INFO, logger="appliance.leds"):
        leds = SimulatedLeds()
        leds.show(LedPattern.READY)
        leds.show(LedPattern.READY)  # no change: no line
        leds.show(LedPattern.DISEASE)
        leds.show(LedPattern.FAULT_CAMERA)
    lines = [r.getMessage() for r in caplog.records if r.name == "appliance.leds"]
    assert lines == ["LED: green steady (ready)", "LED: red steady (disease)", "LED: red, 2 blinks (fault_camera)"]
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "appliance.leds")


def test_selftest_prints_the_simulated_leds_and_says_where(tmp_path):
    said: list[str] = []
    results = {
        c.part: c for c in run_selftest(simulated_config(tmp_path), interactive=False, led_pause=0, say=said.append)
    }
    assert "LED: green steady (ready)" in said and "LED: amber steady (retake)" in said
    assert "printed above" in results["leds"].detail and "look at them" not in results["leds"].detail
