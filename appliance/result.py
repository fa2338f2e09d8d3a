"""What one diagnosis produces: the verdict, the ranked classes and how they were reached."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    DIAGNOSIS = "diagnosis"  # crop and condition named
    RETAKE = "retake"  # the photo is unusable: take another
    UNKNOWN = "unknown"  # the photo is fine, but the answer is not in the model


class RetakeReason(StrEnum):
    NO_LEAF = "no_leaf"
    BLURRED = "blurred"
    TOO_DARK = "too_dark"
    TOO_BRIGHT = "too_bright"
    NOT_SURE = "not_sure"


class UnknownReason(StrEnum):
    """Why a usable photo gets "I don't know this" rather than a guess."""

    OTHER_PLANT = "other_plant"  # not a crop this appliance knows
    UNKNOWN_CONDITION = "unknown_condition"  # a known crop, but not a condition the model knows


@dataclass(frozen=True)
class Ranked:
    slug: str
    probability: float  # calibrated (temperature-scaled) softmax


@dataclass(frozen=True)
class Quality:
    brightness: float  # mean luma, 0..255
    dark_fraction: float  # share of pixels below 20
    bright_fraction: float  # share of pixels above 250
    sharpness: float  # variance of the Laplacian at the model's size
    plant_fraction: float  # share of pixels with a leaf-like colour


@dataclass(frozen=True)
class Timings:
    decode_ms: float = 0.0
    quality_ms: float = 0.0
    inference_ms: float = 0.0
    total_ms: float = 0.0


@dataclass(frozen=True)
class Diagnosis:
    verdict: Verdict
    reason: RetakeReason | UnknownReason | None
    top: tuple[Ranked, ...]
    quality: Quality
    timings: Timings
    model_version: str
    model_sha256: str
    # Words for people, in the chosen language (see appliance/labels.py).
    crop: str = ""
    condition: str = ""
    advice: str = ""
    healthy: bool = False
    # The crops the diagnosis chose among (config [diagnosis] crops); empty: every crop the model knows.
    crops: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def best(self) -> Ranked:
        return self.top[0]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["verdict"] = self.verdict.value
        d["reason"] = self.reason.value if self.reason else None
        return d
