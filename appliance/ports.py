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

from .result import Diagnosis
from .vision.preprocess import InputSpec


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
    def start(self, on_press: Callable[[Press], object]) -> None:
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


# ---- what the daemon asks of the rest of the appliance ---------------------------------------
# The store, the USB export, sync and the service manager are whole subsystems; the daemon sees
# each through the few calls below, so its tests run on small in-memory fakes (tests/core/).


class SavedRecord(Protocol):
    @property
    def id(self) -> str: ...


class RecordStore(Protocol):
    """The diagnosis log: one row and one photo per press, kept through power cuts."""

    def record(
        self, diagnosis: Diagnosis, jpeg: bytes, *, device_id: str, latency: dict[str, float]
    ) -> SavedRecord: ...

    def count(self) -> int: ...

    def free_bytes(self) -> int:
        """Bytes free where the photos are written (the storage rule reads it)."""

    def close(self) -> None: ...


class ExportProgress(Protocol):
    """One progress report of a running export (read-only)."""

    @property
    def phase(self) -> str: ...

    @property
    def records_done(self) -> int: ...

    @property
    def records_total(self) -> int: ...

    @property
    def bytes_done(self) -> int: ...

    @property
    def bytes_total(self) -> int: ...


class ExportOutcome(Protocol):
    """What an export did, as its screen reports it (read-only)."""

    @property
    def rows(self) -> int: ...

    @property
    def photos(self) -> int: ...

    @property
    def already_on_stick(self) -> int: ...

    @property
    def eject_message(self) -> str: ...

    @property
    def safe_to_remove(self) -> bool: ...


class UsbExport(Protocol):
    """The long press: find a stick, copy the log to it, then free exported photos if space is short."""

    def find(self) -> Path | None: ...

    def export(self, store: RecordStore, stick: Path, progress: Callable[[ExportProgress], None]) -> ExportOutcome: ...

    def make_room(self, store: RecordStore) -> object: ...


class SyncStatus(Protocol):
    """The background push to base: the daemon starts and stops it and shows its one line."""

    @property
    def enabled(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> object: ...

    def line(self, language: str = "en") -> str: ...

    def note_new_record(self) -> None: ...


class Notifier(Protocol):
    """The service manager (systemd's sd_notify): readiness, a status line, stopping."""

    def ready(self) -> None: ...

    def status(self, text: str) -> None: ...

    def stopping(self) -> None: ...


class Watchdog(Protocol):
    def start(self) -> object: ...

    def kick(self) -> None: ...

    def stop(self) -> None: ...


class DiagnoserPort(Protocol):
    """A photo in, a diagnosis out; plus what the ready screen says about the model and its crops."""

    @property
    def info(self) -> ModelInfo: ...

    @property
    def language(self) -> str: ...

    @property
    def crops(self) -> tuple[str, ...]:
        """Crop keys it chooses among; () = every crop the model knows."""

    def diagnose(self, bgr: np.ndarray) -> Diagnosis: ...
