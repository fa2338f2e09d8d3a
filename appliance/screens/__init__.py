"""What the appliance's small screen shows, drawn as RGB arrays from plain data.

The daemon builds one of the frozen dataclasses below and calls :func:`render`; nothing
here touches hardware, so the same pictures go to a framebuffer, to PNG files in
simulation, and into tests. Layout is derived from the screen size (240x240 up to
800x480): font sizes follow the height and width, text is wrapped to its box and
shrunk down to a readable minimum, and what still does not fit ends in an ellipsis
instead of running off the screen.
"""

from __future__ import annotations

from appliance.screens.draw import AMBER, BLUE, GREEN, PURPLE, RED, WARNING_BAND
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
from appliance.screens.render import render
from appliance.screens.text import BOLD_FONT, ELLIPSIS, FONT_DIR, REGULAR_FONT, fit_text, font

__all__ = [
    "AMBER",
    "BLUE",
    "BOLD_FONT",
    "ELLIPSIS",
    "FONT_DIR",
    "GREEN",
    "PURPLE",
    "RED",
    "REGULAR_FONT",
    "WARNING_BAND",
    "FaultScreen",
    "MessageScreen",
    "ProgressScreen",
    "ReadyScreen",
    "ResultScreen",
    "RetakeScreen",
    "Screen",
    "UnknownScreen",
    "WorkingScreen",
    "fit_text",
    "font",
    "render",
]
