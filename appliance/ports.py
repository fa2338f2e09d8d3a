"""The small interfaces the core depends on; real and simulated adapters implement them.

The daemon's state machine, the diagnosis pipeline and the store see only these, so the
same core runs on a Pi with real hardware and on any machine in simulation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .vision.preprocess import InputSpec


class CameraError(Exception):
    """The camera is missing, disconnected or returned no frame; the daemon shows a fault and retries."""


class Press(StrEnum):
    SHORT = "short"  # diagnose
    LONG = "long"  # export to USB


class LedPattern(StrEnum):
    OFF = "off"
    READY = "ready"  # green, slow breathe/steady
    BUSY = "busy"  # amber (or blue) fast blink
    HEALTHY = "healthy"  # green steady
    DISEASE = "disease"  # red steady
    RETAKE = "retake"  # amber steady
    UNKNOWN = "unknown"  # amber double blink: a plant or condition the model does not know
    EXPORTING = "exporting"  # blue/amber blink
    SAFE_TO_REMOVE = "safe_to_remove"  # green double blink
    FAULT_CAMERA = "fault_camera"  # red, 2 blinks then pause
    FAULT_STORAGE = "fault_storage"  # red, 3 blinks then pause
    FAULT_MODEL = "fault_model"  # red, 4 blinks then pause
    FAULT_OTHER = "fault_other"  # red, 5 blinks then pause


@runtime_checkable
class Camera(Protocol):
    def start(self) -> None:
        """Open the device and start streaming; raises CameraError when it is not there."""

    def capture(self) -> np.ndarray:
        """The newest frame as an upright BGR uint8 array; raises CameraError."""

    def close(self) -> None: ...


@runtime_checkable
class Button(Protocol):
    def start(self, on_press: Callable[[Press], None]) -> None:
        """Begin delivering presses to ``on_press`` (from any thread)."""

    def close(self) -> None: ...


@runtime_checkable
class Leds(Protocol):
    def show(self, pattern: LedPattern) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class Display(Protocol):
    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""

    def show(self, frame: np.ndarray) -> None:
        """Put an RGB uint8 array of exactly ``size`` on the screen."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class ModelInfo:
    """What the classifier's file says about itself: the core reads classes, calibration and threshold here."""

    path: Path
    sha256: str
    name: str
    version: str
    precision: str
    classes: tuple[str, ...]
    spec: InputSpec
    temperature: float
    refuse_below: float
    data_manifest_sha256: str


@runtime_checkable
class Classifier(Protocol):
    """One method, like Frigate's detector interface: a preprocessed tensor in, logits out."""

    def logits(self, tensor: np.ndarray) -> np.ndarray: ...
