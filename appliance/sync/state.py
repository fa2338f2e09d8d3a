"""What the ready screen says about sync: the worker's state as an immutable snapshot, and its one line."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from appliance.words import ENGLISH, say


class SyncStatus(StrEnum):
    OFF = "off"  # [sync] enabled = false
    STARTING = "starting"  # no attempt finished yet
    SYNCING = "syncing"
    SYNCED = "synced"  # the last attempt reached the collector
    OFFLINE = "offline"  # could not reach it, the connection broke, or it asked to come back later
    ERROR = "error"  # the collector said no, or the device is not set up right


@dataclass(frozen=True)
class SyncState:
    status: SyncStatus
    waiting: int | None = None  # rows not yet acknowledged (None: not counted yet)
    last_success: datetime | None = None  # UTC
    problem: str = ""  # a few words for the screen, e.g. "token refused"
    detail: str = ""  # the full message, for the log and `appliance sync`
    refused: int = 0  # records the collector will not take (kept on the device)
    photo_quota_full: bool = False  # base keeps no more full photos of this device; records still sync

    def line(self, now: datetime | None = None, language: str = ENGLISH) -> str:
        """One line for the ready screen: "Synced 12:04, 0 waiting", "Offline, 37 waiting", "Sync error: ..."."""
        if self.status == SyncStatus.OFF:
            return say("sync.off", language)
        if self.status == SyncStatus.ERROR:
            if self.problem:
                return say("sync.error", language, problem=self.problem)
            return say("sync.error_see_log", language)
        if self.status == SyncStatus.OFFLINE:
            key = {"interrupted": "sync.interrupted", "collector busy": "sync.collector_busy"}.get(self.problem)
            line = say(key or "sync.offline", language)
        elif self.status == SyncStatus.SYNCING:
            line = say("sync.syncing", language)
        elif self.photo_quota_full:
            line = say("sync.photo_quota_full", language)
        elif self.last_success is None:
            line = say("sync.not_yet", language)
        else:
            line = say("sync.synced", language, when=_when(self.last_success, now))
        return line if self.waiting is None else say("sync.waiting", language, line=line, count=self.waiting)


def _when(moment: datetime, now: datetime | None) -> str:
    local = moment.astimezone()
    today = (now or datetime.now(UTC)).astimezone().date()
    return f"{local:%H:%M}" if local.date() == today else f"{local.day} {local:%b} {local:%H:%M}"
