"""Every error the device raises on purpose, under one root (gpiozero's exc.py is the model).

Each carries a message fit to show as it is: `appliance` prints any ApplianceError as one line.
The collector has its own root (leaf_collector.errors), the wire client its own (CollectorError).
"""

from __future__ import annotations


class ApplianceError(Exception):
    """Base for errors whose message is written for the operator."""


class ImageError(ApplianceError):
    """An input file that is not a usable photo (unreadable, truncated, too large, not an image)."""


class ModelError(ApplianceError):
    """The classifier model is missing, corrupt or does not match its checksum."""


class ConfigError(ApplianceError):
    """A configuration file that cannot be used; the message names file, key and reason."""


class CameraError(ApplianceError):
    """The camera is missing, disconnected or returned no frame; the daemon shows a fault and retries."""


class StoreError(ApplianceError):
    """The diagnosis log cannot be opened or written; the message says why and what to do."""


class StoreSchemaError(StoreError):
    """The database's schema is newer than this software, or a migration step failed."""


class StoreCorruptError(StoreError):
    """The database file is damaged or is not SQLite; it was left exactly as found."""

    def __init__(self, message: str, findings: list[str] | None = None) -> None:
        super().__init__(message)
        self.findings = findings or []


class StoreWriteError(StoreError):
    """A diagnosis could not be saved; nothing partial was kept."""


class ExportError(ApplianceError):
    """An export that did not complete; the diagnosis log was left unchanged unless the message says otherwise."""


class SyncSetupError(ApplianceError):
    """Sync cannot start on this device (no URL, no token file, unsafe token file); the message says what to do."""

    def __init__(self, message: str, summary: str = "not set up") -> None:
        super().__init__(message)
        self.summary = summary


class DisplayError(ApplianceError):
    """The display device is missing, not writable or in a pixel format we cannot drive."""


class GpioError(ApplianceError):
    """The button or LEDs cannot be driven: no GPIO on this machine, or the pin is taken."""


class ApplianceNotRunning(ApplianceError):
    """No appliance answers on the control socket a command was pointed at."""
