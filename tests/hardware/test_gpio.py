"""Button and LEDs through gpiozero's MockFactory: real gpiozero device code on simulated pins."""

from __future__ import annotations

import queue
import threading
import time

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from appliance.hardware.gpio import GpioButton, GpioLeds, RgbLeds
from appliance.hardware.sim_leds import SimulatedLeds
from appliance.led_codes import CODE_PAUSE_S, LED_CODES
from appliance.ports import Button, LedPattern, Leds, Press

WAIT_S = 5.0  # generous upper bound for an event to arrive; never a timing assertion


def wait_until(condition, timeout=WAIT_S):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


@pytest.fixture
def factory():
    f = MockFactory()
    yield f
    f.reset()


def started_button(factory, **kw):
    presses: queue.Queue[Press] = queue.Queue()
    kw.setdefault("bounce_ms", 20)
    kw.setdefault("long_press_s", 1.5)
    button = GpioButton(pin=16, pin_factory=factory, **kw)
    button.start(presses.put)
    return button, presses, factory.pin(16)


def assert_no_more(presses, wait_s=0.3):
    with pytest.raises(queue.Empty):
        presses.get(timeout=wait_s)


def test_short_press_is_delivered_on_release(factory):
    button, presses, pin = started_button(factory)
    assert isinstance(button, Button)
    pin.drive_low()  # pull-up wiring: pressed connects the pin to ground
    wait_until(lambda: button.is_pressed)
    assert presses.empty()  # nothing yet: it might still become a long press
    pin.drive_high()
    assert presses.get(timeout=WAIT_S) == Press.SHORT
    assert_no_more(presses)
    button.close()


def test_long_press_fires_once_while_held_and_release_gives_nothing(factory):
    button, presses, pin = started_button(factory, long_press_s=0.2)
    pin.drive_low()
    assert presses.get(timeout=WAIT_S) == Press.LONG
    assert button.is_pressed  # delivered while still held
    assert_no_more(presses)  # no repeat while held
    pin.drive_high()
    wait_until(lambda: not button.is_pressed)
    assert_no_more(presses)
    button.close()


def test_contact_bounce_gives_one_press(factory):
    button, presses, pin = started_button(factory, bounce_ms=60)
    for _ in range(5):  # chatter well inside the 60 ms window
        pin.drive_low()
        pin.drive_high()
    pin.drive_low()
    wait_until(lambda: button.is_pressed)
    for _ in range(5):
        pin.drive_high()
        pin.drive_low()
    pin.drive_high()
    assert presses.get(timeout=WAIT_S) == Press.SHORT
    assert_no_more(presses)
    button.close()


def test_glitch_shorter_than_bounce_window_is_ignored(factory):
    button, presses, pin = started_button(factory, bounce_ms=60)
    pin.drive_low()
    pin.drive_high()
    time.sleep(0.2)
    assert not button.is_pressed
    assert_no_more(presses)
    button.close()


def test_pull_down_wiring_presses_on_high(factory):
    button, presses, pin = started_button(factory, pull_up=False)
    assert pin.state is False  # idle low with the pull-down
    pin.drive_high()
    wait_until(lambda: button.is_pressed)
    pin.drive_low()
    assert presses.get(timeout=WAIT_S) == Press.SHORT
    button.close()


def test_pull_up_wiring_ignores_the_idle_level(factory):
    button, presses, pin = started_button(factory, pull_up=True)
    assert pin.state is True
    pin.drive_high()
    assert_no_more(presses)
    button.close()


def test_handler_error_does_not_stop_later_presses(factory):
    seen = []

    def handler(press):
        seen.append(press)
        raise RuntimeError("daemon bug")

    button = GpioButton(pin=16, bounce_ms=10, long_press_s=1.5, pin_factory=factory)
    button.start(handler)
    pin = factory.pin(16)
    for _ in range(2):
        pin.drive_low()
        wait_until(lambda: button.is_pressed)
        pin.drive_high()
        wait_until(lambda: not button.is_pressed)
    wait_until(lambda: len(seen) == 2)
    button.close()
    button.close()


# ---- LEDs ---------------------------------------------------------------------------------------


def test_led_table_covers_every_pattern_and_fault_codes_differ():
    assert set(LED_CODES) == set(LedPattern)
    faults = [LED_CODES[p] for p in LedPattern if p.value.startswith("fault_")]
    assert sorted(c.blinks for c in faults) == [2, 3, 4, 5]
    assert all(c.colour == "red" and len(c.steps) == c.blinks for c in faults)
    assert "3 short blinks" in LED_CODES[LedPattern.FAULT_STORAGE].describe()
    assert LED_CODES[LedPattern.READY].describe() == "green, steady"


@pytest.mark.parametrize(
    ("pattern", "lit"),
    [
        (LedPattern.READY, {5}),
        (LedPattern.HEALTHY, {5}),
        (LedPattern.DISEASE, {13}),
        (LedPattern.RETAKE, {6}),
        (LedPattern.OFF, set()),
    ],
)
def test_steady_patterns_light_the_right_led(factory, pattern, lit):
    leds = GpioLeds(green=5, amber=6, red=13, pin_factory=factory)
    assert isinstance(leds, Leds)
    leds.show(LedPattern.DISEASE)
    leds.show(pattern)
    assert {n for n in (5, 6, 13) if factory.pin(n).state} == lit
    leds.close()
    assert not any(factory.pin(n).state for n in (5, 6, 13))


def test_active_low_leds_are_inverted(factory):
    leds = GpioLeds(green=5, amber=6, red=13, active_high=False, pin_factory=factory)
    leds.show(LedPattern.READY)
    assert factory.pin(5).state is False  # sinking current: low is on
    assert factory.pin(13).state is True
    leds.close()


def on_pulses_per_cycle(states, scale):
    """Counts on-pulses between the long pauses in a mock pin's history (skips partial cycles)."""
    threshold = scale * (0.35 + CODE_PAUSE_S) / 2  # between a blink gap and the pause
    cycles, count, in_cycle = [], 0, False
    for st in states[1:]:
        if st.state:  # a rising edge; st.timestamp is how long the pin was off before it
            if st.timestamp > threshold:
                if in_cycle:
                    cycles.append(count)
                in_cycle, count = True, 0
            count += 1
    return cycles


@pytest.mark.parametrize("pattern", [LedPattern.FAULT_CAMERA, LedPattern.FAULT_OTHER])
def test_blink_code_gives_n_pulses_per_cycle(factory, pattern):
    scale = 0.1  # a cycle in a few tenths of a second
    blinks = LED_CODES[pattern].blinks
    leds = GpioLeds(pin_factory=factory, time_scale=scale)
    red = factory.pin(13)
    leds.show(pattern)
    # 2N+1 rising edges always contain one whole cycle between two pauses
    wait_until(lambda: sum(1 for s in red.states[1:] if s.state) >= 2 * blinks + 1)
    leds.show(LedPattern.OFF)
    cycles = on_pulses_per_cycle(red.states, scale)
    assert len(cycles) >= 1
    assert all(c == blinks for c in cycles), cycles
    assert not factory.pin(5).state and not factory.pin(6).state
    leds.close()


def test_switching_pattern_stops_the_previous_blinking(factory):
    leds = GpioLeds(pin_factory=factory, time_scale=0.1)
    red, amber, green = factory.pin(13), factory.pin(6), factory.pin(5)
    leds.show(LedPattern.FAULT_STORAGE)  # our own sequencer
    wait_until(lambda: len(red.states) > 3)
    leds.show(LedPattern.BUSY)  # gpiozero's background blink
    wait_until(lambda: len(amber.states) > 3)
    leds.show(LedPattern.READY)
    red.clear_states()
    amber.clear_states()
    time.sleep(0.3)  # several blink periods at this scale
    assert len(red.states) == 1 and red.state is False
    assert len(amber.states) == 1 and amber.state is False
    assert green.state is True
    leds.close()


def test_safe_to_remove_double_blinks_green(factory):
    leds = GpioLeds(pin_factory=factory, time_scale=0.1)
    green = factory.pin(5)
    leds.show(LedPattern.SAFE_TO_REMOVE)
    wait_until(lambda: sum(1 for s in green.states if s.state) >= 4)
    assert not factory.pin(13).state
    leds.close()


def test_rgb_led_colours(factory):
    factory.pin_class = MockPWMPin
    leds = RgbLeds(red=13, green=5, blue=6, pin_factory=factory)
    r, g, b = factory.pin(13), factory.pin(5), factory.pin(6)
    leds.show(LedPattern.READY)
    assert (r.state, g.state, b.state) == (0, 1, 0)
    leds.show(LedPattern.RETAKE)  # amber: full red, some green
    assert r.state == 1 and 0 < g.state < 1 and b.state == 0
    leds.show(LedPattern.DISEASE)
    assert (r.state, g.state, b.state) == (1, 0, 0)
    leds.show(LedPattern.BUSY)
    wait_until(lambda: sum(1 for s in r.states if s.state) >= 3)
    leds.show(LedPattern.OFF)
    r.clear_states()
    time.sleep(0.4)
    assert len(r.states) == 1 and r.state == 0
    leds.close()
    leds.close()


def test_rgb_without_pwm_shows_amber_as_yellow(factory):
    leds = RgbLeds(red=13, green=5, blue=6, pwm=False, pin_factory=factory)
    leds.show(LedPattern.RETAKE)
    assert (factory.pin(13).state, factory.pin(5).state, factory.pin(6).state) == (True, True, False)
    leds.close()


def test_simulated_leds_record_a_timeline_from_many_threads():
    changes = []
    leds = SimulatedLeds(on_change=changes.append)
    assert isinstance(leds, Leds)
    leds.show(LedPattern.READY)
    leds.show(LedPattern.READY)
    leds.show(LedPattern.BUSY)
    assert leds.current == LedPattern.BUSY
    assert leds.patterns() == [LedPattern.READY, LedPattern.READY, LedPattern.BUSY]
    assert changes == [LedPattern.READY, LedPattern.BUSY]
    times = [t for t, _ in leds.timeline]
    assert times == sorted(times)

    threads = [threading.Thread(target=lambda: [leds.show(LedPattern.HEALTHY) for _ in range(100)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(leds.timeline) == 403
    leds.close()
    assert leds.current == LedPattern.OFF
    leds.show(LedPattern.READY)  # after close: ignored
    assert leds.current == LedPattern.OFF
