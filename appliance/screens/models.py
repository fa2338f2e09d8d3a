"""What the daemon passes to be drawn: one frozen dataclass per screen (the words are in appliance.words)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np

from appliance.result import Diagnosis, RetakeReason, UnknownReason


@dataclass(frozen=True)
class ReadyScreen:
    model_version: str = ""
    records: int | None = None
    free_mb: float | None = None  # free storage in MiB (2**20 bytes)
    now: datetime | None = None  # None: the current local time
    status: str = ""  # one optional line, e.g. sync state or a storage warning
    warning: bool = False  # show ``status`` on an amber band
    crops: tuple[str, ...] | None = None  # display names of the configured crops; () = all; None = no line


@dataclass(frozen=True)
class WorkingScreen:
    stage: str = ""
    title: str = ""  # what is being done ("" = looking at the leaf): start-up must not claim to look at one


@dataclass(frozen=True, eq=False)
class ResultScreen:
    diagnosis: Diagnosis
    photo: np.ndarray | None = None  # BGR, as captured
    short_advice: str | None = None  # None: the labels' short advice for the diagnosis's class and language


@dataclass(frozen=True, eq=False)
class RetakeScreen:
    reason: RetakeReason
    photo: np.ndarray | None = None  # BGR, as captured
    headline: str | None = None  # None: the reason's words in the screen's language (leaf_wire.reasons)
    hint: str | None = None


@dataclass(frozen=True, eq=False)
class UnknownScreen:
    """A usable photo whose answer is not in the model: another plant, or a condition it was not taught."""

    headline: str  # the Diagnosis's condition, e.g. "I don't know this plant"
    hint: str  # the Diagnosis's advice: what to do instead
    crop: str = ""  # the crop's display name when the crop is known (unknown condition)
    reason: UnknownReason | None = None
    photo: np.ndarray | None = None  # BGR, as captured

    @classmethod
    def of(cls, d: Diagnosis, photo: np.ndarray | None = None) -> UnknownScreen:
        reason = d.reason if isinstance(d.reason, UnknownReason) else None
        return cls(headline=d.condition, hint=d.advice, crop=d.crop, reason=reason, photo=photo)


@dataclass(frozen=True)
class FaultScreen:
    title: str
    problem: str
    action: str
    code: int | None = None  # the LED blink code: red blinks per cycle


@dataclass(frozen=True)
class ProgressScreen:
    title: str
    done: int
    total: int
    bytes_done: int = 0
    bytes_total: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class MessageScreen:
    title: str
    body: str = ""
    tone: Literal["info", "ok", "warning", "error"] = "info"


Screen = (
    ReadyScreen
    | WorkingScreen
    | ResultScreen
    | RetakeScreen
    | UnknownScreen
    | FaultScreen
    | ProgressScreen
    | MessageScreen
)
