"""How much of the SD card the log may use: warn below one level, refuse new photos below another.

One rule for the daemon (ready screen, refusing a press), the self-test and the export's
pruning; it lives in the core because the daemon applies it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from appliance.words import ENGLISH, say


class StorageLimits(Protocol):
    """The config's [storage] section, as far as this rule reads it."""

    @property
    def warn_below_mb(self) -> int: ...

    @property
    def refuse_below_mb(self) -> int: ...


MIB = 2**20  # the daemon reads storage.*_mb as MiB


class StorageLevel(StrEnum):
    OK = "ok"
    WARN = "warn"  # keep working, tell the user to export
    REFUSE = "refuse"  # no new photos until space is freed


@dataclass(frozen=True)
class StorageStatus:
    level: StorageLevel
    free_bytes: int
    warn_below_bytes: int
    refuse_below_bytes: int

    @property
    def message(self) -> str:
        free = f"{self.free_bytes / MIB:.0f} MB"
        if self.level is StorageLevel.REFUSE:
            return (
                f"Storage full: {free} left, below the {self.refuse_below_bytes / MIB:.0f} MB needed for new photos. "
                f"Export to a USB stick; exported photos can then be freed."
            )
        if self.level is StorageLevel.WARN:
            return f"Storage almost full: {free} left. Export to a USB stick soon."
        return f"{free} free"

    def short(self, language: str = ENGLISH) -> str:
        """The ready screen's status line: one short sentence, in the display's language."""
        if self.level is StorageLevel.OK:
            return ""
        return say("ready.storage_low", language, megabytes=f"{self.free_bytes / MIB:.0f}")


def storage_status(free_bytes: int, storage: StorageLimits) -> StorageStatus:
    """Classify free space against the config's [storage] thresholds (MB = MiB)."""
    warn, refuse = storage.warn_below_mb * MIB, storage.refuse_below_mb * MIB
    level = StorageLevel.REFUSE if free_bytes < refuse else StorageLevel.WARN if free_bytes < warn else StorageLevel.OK
    return StorageStatus(level, int(free_bytes), warn, refuse)
