"""The push button and the status LEDs on the Pi's GPIO header, through gpiozero.

gpiozero is imported inside the constructors; ``pin_factory`` lets tests pass
``gpiozero.pins.mock.MockFactory`` so the real gpiozero device code runs on simulated pins.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import GpioError
from ..led_codes import LED_CODES, Colour
from ..ports import LedPattern, Press
from .closing import Closing

log = logging.getLogger(__name__)

NO_GPIO_HINT = (
    "This computer has no GPIO that gpiozero can drive: it is not a Raspberry Pi, or the Pi's "
    "GPIO library (python3-lgpio) is missing from the appliance's environment. The button and "
    "LEDs need it. To try the appliance here, add --simulate (simulated camera, button, LEDs and "
    "display); on a Pi, run the technician's provisioning (deploy/TECHNICIAN.md)."
)


@contextlib.contextmanager
def gpio_devices(what: str) -> Iterator[None]:
    """Creating gpiozero devices: its pin-factory fallbacks logged once, its errors as GpioError.

    Off a Pi gpiozero warns once per factory it tries and then raises BadPinFactory, which gave
    a newcomer four warnings and a traceback.
    """
    from gpiozero.exc import BadPinFactory, GPIOZeroError, PinFactoryFallback

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PinFactoryFallback)
        try:
            yield
        except BadPinFactory:
            raise GpioError(f"{what}: {NO_GPIO_HINT}") from None
        except GPIOZeroError as exc:
            raise GpioError(f"{what}: {exc} (is another program using this pin?)") from None
    for w in caught:
        if issubclass(w.category, PinFactoryFallback):
            log.info("gpiozero: %s", w.message)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)


class _Sequencer:
    """Plays (on, off) steps in a loop on a background thread until stopped.

    gpiozero's blink() covers one on/off pair; blink codes need a pause after the Nth blink.
    """

    def __init__(self, set_on: Callable[[bool], None], steps: tuple[tuple[float, float], ...]) -> None:
        self._set_on = set_on
        self._steps = steps
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="led-sequence", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            for on_s, off_s in self._steps:
                self._set_on(True)
                if self._stop.wait(on_s):
                    return
                self._set_on(False)
                if self._stop.wait(off_s):
                    return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)


class _LedDriver(Closing):
    """Shared logic of the two LED builds: subclasses say how to light one colour."""

    def __init__(self, time_scale: float) -> None:
        self.time_scale = time_scale  # < 1 only in tests, to play a code's cycle quickly
        self.pattern = LedPattern.OFF
        self._sequencer: _Sequencer | None = None
        self._lock = threading.Lock()
        self._closed = False

    def _all_off(self) -> None:
        raise NotImplementedError

    def _steady(self, colour: Colour) -> None:
        raise NotImplementedError

    def _blink(self, colour: Colour, on_s: float, off_s: float) -> None:
        raise NotImplementedError

    def _switch(self, colour: Colour, on: bool) -> None:
        raise NotImplementedError

    def show(self, pattern: LedPattern) -> None:
        code = LED_CODES[LedPattern(pattern)]
        with self._lock:
            if self._closed or LedPattern(pattern) == self.pattern:
                return  # showing the same pattern again must not restart (and visibly stutter) a blink
            self._stop_sequencer()
            self._all_off()  # also stops any gpiozero background blink
            self.pattern = LedPattern(pattern)
            if code.colour == "off":
                return
            scale = self.time_scale
            if not code.steps:
                self._steady(code.colour)
            elif len(code.steps) == 1:
                on_s, off_s = code.steps[0]
                self._blink(code.colour, on_s * scale, off_s * scale)
            else:
                steps = tuple((on_s * scale, off_s * scale) for on_s, off_s in code.steps)
                colour = code.colour
                self._sequencer = _Sequencer(lambda on: self._switch(colour, on), steps)

    def _stop_sequencer(self) -> None:
        if self._sequencer is not None:
            self._sequencer.stop()
            self._sequencer = None

    def _close_devices(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stop_sequencer()
            try:
                self._all_off()
            finally:
                self._close_devices()


class GpioLeds(_LedDriver):
    """Three separate LEDs: green, amber, red."""

    def __init__(
        self,
        green: int = 5,
        amber: int = 6,
        red: int = 13,
        active_high: bool = True,
        pin_factory: Any = None,
        time_scale: float = 1.0,
    ) -> None:
        from gpiozero import LED

        super().__init__(time_scale)
        self._leds: dict[str, Any] = {}
        try:
            with gpio_devices(f"LEDs on GPIO {green}, {amber}, {red}"):
                for name, pin in (("green", green), ("amber", amber), ("red", red)):
                    self._leds[name] = LED(pin, active_high=active_high, initial_value=False, pin_factory=pin_factory)
        except Exception:
            self._close_devices()
            raise

    def _all_off(self) -> None:
        for led in self._leds.values():
            led.off()

    def _steady(self, colour: Colour) -> None:
        self._leds[colour].on()

    def _blink(self, colour: Colour, on_s: float, off_s: float) -> None:
        self._leds[colour].blink(on_time=on_s, off_time=off_s, background=True)

    def _switch(self, colour: Colour, on: bool) -> None:
        led = self._leds[colour]
        if on:
            led.on()
        else:
            led.off()

    def _close_devices(self) -> None:
        for led in self._leds.values():
            led.close()


class RgbLeds(_LedDriver):
    """One RGB LED; amber needs PWM (without it amber shows as yellow)."""

    def __init__(
        self,
        red: int = 13,
        green: int = 5,
        blue: int = 6,
        active_high: bool = True,
        pin_factory: Any = None,
        pwm: bool = True,
        time_scale: float = 1.0,
    ) -> None:
        from gpiozero import RGBLED

        super().__init__(time_scale)
        with gpio_devices(f"RGB LED on GPIO {red}, {green}, {blue}"):
            self._rgb = RGBLED(red, green, blue, active_high=active_high, pwm=pwm, pin_factory=pin_factory)
        self._colours: dict[str, tuple[float, float, float]] = {
            "green": (0.0, 1.0, 0.0),
            "amber": (1.0, 0.35, 0.0) if pwm else (1.0, 1.0, 0.0),
            "red": (1.0, 0.0, 0.0),
        }

    def _all_off(self) -> None:
        self._rgb.off()

    def _steady(self, colour: Colour) -> None:
        self._rgb.color = self._colours[colour]

    def _blink(self, colour: Colour, on_s: float, off_s: float) -> None:
        self._rgb.blink(on_time=on_s, off_time=off_s, on_color=self._colours[colour], background=True)

    def _switch(self, colour: Colour, on: bool) -> None:
        self._rgb.color = self._colours[colour] if on else (0.0, 0.0, 0.0)

    def _close_devices(self) -> None:
        self._rgb.close()


class GpioButton(Closing):
    """The one push button: a short press diagnoses, holding it starts a USB export.

    A press is only counted once the level has been stable for ``bounce_ms`` (checked in
    software as well, because not every pin factory debounces, and one that drops edges
    inside its window could otherwise leave the button "stuck" down). LONG is delivered
    as soon as the hold time is reached, so the person knows when to let go; that
    release then delivers nothing. A shorter press delivers SHORT on release.
    """

    def __init__(
        self,
        pin: int = 16,
        pull_up: bool = True,
        bounce_ms: int = 50,
        long_press_s: float = 2.0,
        pin_factory: Any = None,
    ) -> None:
        from gpiozero import Button

        self.bounce_s = max(0, bounce_ms) / 1000.0
        self.long_press_s = long_press_s
        with gpio_devices(f"button on GPIO {pin}"):
            self._button = Button(pin, pull_up=pull_up, bounce_time=self.bounce_s or None, pin_factory=pin_factory)
        self._on_press: Callable[[Press], object] | None = None
        self._lock = threading.Lock()
        self._settle: threading.Timer | None = None
        self._hold: threading.Timer | None = None
        self._down = False
        self._held = False
        self._press_no = 0
        self._closed = False

    @property
    def is_pressed(self) -> bool:
        """The debounced state: True once a press has settled, until its release settles."""
        return self._down

    def start(self, on_press: Callable[[Press], object]) -> None:
        self._on_press = on_press
        self._button.when_pressed = self._edge
        self._button.when_released = self._edge

    def _edge(self, *_: Any) -> None:
        with self._lock:
            if self._closed:
                return
            if self._settle is not None:
                self._settle.cancel()
            if not self.bounce_s:
                self._settle = None
            else:
                self._settle = threading.Timer(self.bounce_s, self._settled)
                self._settle.daemon = True
                self._settle.start()
                return
        self._settled()

    def _settled(self) -> None:
        pressed = bool(self._button.is_pressed)
        deliver = None
        with self._lock:
            if self._closed:
                return
            if pressed and not self._down:
                self._down, self._held = True, False
                self._press_no += 1
                self._hold = threading.Timer(self.long_press_s, self._hold_reached, args=(self._press_no,))
                self._hold.daemon = True
                self._hold.start()
            elif not pressed and self._down:
                self._down = False
                if self._hold is not None:
                    self._hold.cancel()
                    self._hold = None
                if not self._held:
                    deliver = Press.SHORT
        if deliver is not None:
            self._deliver(deliver)

    def _hold_reached(self, press_no: int) -> None:
        with self._lock:
            if self._closed or not self._down or self._held or press_no != self._press_no:
                return
            self._held = True
        self._deliver(Press.LONG)

    def _deliver(self, press: Press) -> None:
        callback = self._on_press
        if callback is None:
            return
        try:
            callback(press)
        except Exception:  # the daemon's handler failing must not kill gpiozero's event thread
            log.exception("button handler failed on a %s press", press.value)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for timer in (self._settle, self._hold):
                if timer is not None:
                    timer.cancel()
        self._button.close()
