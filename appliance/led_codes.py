"""What each LED pattern looks like and means: one table for every LED build, the daemon's fault codes
and the hardware guide's troubleshooting table (generated from it).

Core, not an adapter: the daemon reads the blink counts without importing gpiozero's adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .ports import LedPattern

Colour = Literal["off", "green", "amber", "red"]

BLINK_ON_S = 0.25
BLINK_OFF_S = 0.35
CODE_PAUSE_S = 2.0


@dataclass(frozen=True)
class LedCode:
    """What the LEDs do for one pattern: a colour, and the (on, off) seconds played in a loop.

    No steps means steady. ``blinks`` is the fault code a person counts (0 for non-faults).
    """

    colour: Colour
    steps: tuple[tuple[float, float], ...] = ()
    blinks: int = 0
    meaning: str = ""

    def describe(self) -> str:
        """The pattern in words, for the hardware guide and the troubleshooting table."""
        if self.colour == "off":
            return "off"
        if not self.steps:
            return f"{self.colour}, steady"
        if self.blinks:
            return f"{self.colour}, {self.blinks} short blinks then a {CODE_PAUSE_S:g} s pause, repeating"
        if len(self.steps) == 2:
            return f"{self.colour}, double blink, repeating"
        on, off = self.steps[0]
        speed = "fast" if on + off < 0.5 else "slow"
        return f"{self.colour}, {speed} blink ({on:g} s on, {off:g} s off)"

    def short(self) -> str:
        """The pattern as the first column of the hardware guide's troubleshooting table names it."""
        colour = self.colour.capitalize()
        if self.colour == "off":
            return "No LED at all"
        if not self.steps:
            return f"{colour} steady"
        if self.blinks:
            return f"{colour}, {self.blinks} blinks"
        if len(self.steps) == 2:
            return f"{colour} double blink"
        on, off = self.steps[0]
        return f"{colour} {'fast' if on + off < 0.5 else 'slow'} blink"


def _fault(blinks: int, meaning: str) -> LedCode:
    steps = ((BLINK_ON_S, BLINK_OFF_S),) * (blinks - 1) + ((BLINK_ON_S, CODE_PAUSE_S),)
    return LedCode("red", steps, blinks, meaning)


# One table for every LED build: the hardware guide and troubleshooting table are generated from it.
LED_CODES: dict[LedPattern, LedCode] = {
    LedPattern.OFF: LedCode("off", meaning="Not running"),
    LedPattern.READY: LedCode("green", meaning="Ready: hold a leaf in front of the camera and press the button"),
    LedPattern.BUSY: LedCode("amber", ((0.15, 0.15),), meaning="Taking and checking the photo"),
    LedPattern.HEALTHY: LedCode("green", meaning="Result: the leaf looks healthy"),
    LedPattern.DISEASE: LedCode("red", meaning="Result: a disease was found (see the screen)"),
    LedPattern.RETAKE: LedCode("amber", meaning="Photo not usable: take it again (see the screen)"),
    LedPattern.UNKNOWN: LedCode(
        "amber",
        ((0.15, 0.15), (0.15, 1.2)),
        meaning="Not known: a plant or a condition this model does not know (see the screen)",
    ),
    LedPattern.EXPORTING: LedCode("amber", ((0.8, 0.8),), meaning="Copying records to the USB stick: do not remove it"),
    LedPattern.SAFE_TO_REMOVE: LedCode(
        "green", ((0.15, 0.15), (0.15, 1.2)), meaning="Export finished: the USB stick can be removed"
    ),
    LedPattern.FAULT_CAMERA: _fault(2, "Camera fault: camera missing or not working"),
    LedPattern.FAULT_STORAGE: _fault(3, "Storage fault: the SD card is full or cannot be written"),
    LedPattern.FAULT_MODEL: _fault(4, "Model fault: the diagnosis model is missing or damaged"),
    LedPattern.FAULT_OTHER: _fault(5, "Other fault: see the screen or the service log"),
}
