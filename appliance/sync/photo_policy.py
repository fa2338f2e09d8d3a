"""Which records' full photos base wants: the one owner of that rule ([sync] full_photos).

The model learns most from the cases it got least right, so "teaching" sends every hard case
(the model was not sure, the answer was not in the model, or the confidence was low) and a
sample of the rest, so that base also sees what the easy cases look like in the field. The
sample is chosen by hashing the record's id, not by chance: every pass, restart and device
decides the same way, so a record is never sent because a later pass drew it again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from appliance.config import Config
from appliance.result import RetakeReason, Verdict


class Want(StrEnum):
    HARD = "hard"  # the cases the model needs
    SAMPLE = "sample"  # one of the sampled others
    ALL = "all"  # full_photos = "all"
    NO = "no"


@dataclass(frozen=True)
class PhotoPolicy:
    mode: str = "teaching"  # teaching | all | none
    below: float = 0.80  # a diagnosis under this confidence is a hard case
    sample: float = 0.05  # share of the other records also sent

    @classmethod
    def from_config(cls, cfg: Config) -> PhotoPolicy:
        s = cfg.sync
        return cls(mode=s.full_photos, below=s.full_photo_below, sample=s.full_photo_sample)

    @property
    def sends_any(self) -> bool:
        return self.mode != "none"

    def want(self, row: Mapping[str, Any]) -> Want:
        """Whether base wants this record's full photo, and why (a stored row: verdict, reason, top1_probability)."""
        if self.mode == "none":
            return Want.NO
        if self.mode == "all":
            return Want.ALL
        if is_hard(row, self.below):
            return Want.HARD
        return Want.SAMPLE if in_sample(str(row["id"]), self.sample) else Want.NO

    def wants(self, row: Mapping[str, Any]) -> bool:
        return self.want(row) is not Want.NO


def is_hard(row: Mapping[str, Any], below: float) -> bool:
    """Retake because the model was not sure, any unknown, or a diagnosis under `below`.

    Dark, bright, blurred and leafless photos are not hard: the gate refused them before the
    model saw them, and a label would teach the model nothing about leaves.
    """
    verdict = row.get("verdict")
    if verdict == Verdict.UNKNOWN:
        return True
    if verdict == Verdict.RETAKE:
        return row.get("reason") == RetakeReason.NOT_SURE
    if verdict == Verdict.DIAGNOSIS:
        probability = row.get("top1_probability")
        return probability is None or float(probability) < below
    return False


def in_sample(record_id: str, share: float) -> bool:
    """A fixed `share` of ids, by the first 8 bytes of their SHA-256 read as a fraction of 2**64."""
    if share <= 0:
        return False
    point = int.from_bytes(hashlib.sha256(record_id.encode("utf-8")).digest()[:8], "big") / 2**64
    return point < share
