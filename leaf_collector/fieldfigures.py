"""How the fleet's models do on photos people labelled: right / refused / unknown / wrong.

One rule for every field figure the collector shows or writes (the page, the field pack's
provenance). It is the training pipeline's rule (models/pipeline/evaluate.outcome), so a
figure at base and one in a model card mean the same: a retake is refused whatever the photo;
"I don't know this" is right only for another plant said to be another plant; a diagnosis is
right when it names the labelled class.

A device's model is the one its latest record names; its rollout on that device is the first
record of the run of records that name it (a device rolled back and forward again starts anew).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from leaf_collector.consensus import BACKGROUNDS, LABELS_BY_PHOTO, agreed_background, consensus

if TYPE_CHECKING:
    import psycopg

OUTCOMES = ("right", "refused", "unknown", "wrong")
OTHER_PLANT_PREFIX = "other__"


def outcome(verdict: str, reason: str | None, top1_slug: str | None, expected: str) -> str:
    """What the device's answer was worth for a photo whose true class is `expected`."""
    if verdict == "retake":
        return "refused"
    if verdict == "unknown":
        return "right" if expected.startswith(OTHER_PLANT_PREFIX) and reason == "other_plant" else "unknown"
    return "right" if top1_slug == expected else "wrong"


@dataclass(frozen=True)
class DeviceModel:
    device_id: str
    model_version: str
    model_sha256: str
    since: datetime  # the device's first record with this model, in the run that is current
    counts: dict[str, int]  # OUTCOMES -> records
    by_background: dict[str, dict[str, int]]  # the same per agreed background (consensus.BACKGROUNDS)

    @property
    def labelled(self) -> int:
        return sum(self.counts.values())


# Per device: the model of its latest record and when the current run of that model began (the
# first record after the last one that names another model), then its labelled records since.
_FLEET = f"""
WITH latest AS (
    SELECT DISTINCT ON (device_id) device_id, model_version, model_sha256
    FROM diagnoses ORDER BY device_id, sort_at DESC, id DESC
),
before AS (
    SELECT l.*, (SELECT max(o.sort_at) FROM diagnoses o
                 WHERE o.device_id = l.device_id
                   AND (o.model_version, o.model_sha256) <> (l.model_version, l.model_sha256)) AS other_until
    FROM latest l
),
running AS (
    SELECT b.device_id, b.model_version, b.model_sha256,
           (SELECT min(d.sort_at) FROM diagnoses d
            WHERE d.device_id = b.device_id AND d.model_version = b.model_version
              AND d.model_sha256 = b.model_sha256
              AND (b.other_until IS NULL OR d.sort_at > b.other_until)) AS since
    FROM before b
),
given AS ({LABELS_BY_PHOTO})
SELECT r.device_id, r.model_version, r.model_sha256, r.since, d.verdict, d.reason, d.top1_slug, g.given,
       g.backgrounds
FROM running r
LEFT JOIN (diagnoses d JOIN given g ON g.photo_sha256 = d.photo_sha256)
       ON d.device_id = r.device_id AND d.model_version = r.model_version AND d.model_sha256 = r.model_sha256
      AND d.sort_at >= r.since
ORDER BY r.device_id
"""


def models_on_fleet(conn: psycopg.Connection) -> list[DeviceModel]:
    """Each device that has sent a record: its model now, since when, and how it did on labelled photos since."""
    devices: dict[str, tuple[str, str, datetime]] = {}
    counts: dict[str, Counter[str]] = {}
    by_background: dict[str, dict[str, Counter[str]]] = {}
    rows = conn.execute(_FLEET).fetchall()
    for device_id, version, sha, since, verdict, reason, top1, given, backgrounds in rows:
        devices[device_id] = (version, sha, since)
        tally = counts.setdefault(device_id, Counter({k: 0 for k in OUTCOMES}))
        split = by_background.setdefault(device_id, {b: Counter({k: 0 for k in OUTCOMES}) for b in BACKGROUNDS})
        if given is None:  # the device has no labelled record with this model
            continue
        agreed = consensus(given)
        if agreed.kind == "agreed":
            got = outcome(verdict, reason, top1, agreed.slug)
            tally[got] += 1
            where = agreed_background(backgrounds)
            if where:
                split[where][got] += 1
    return [
        DeviceModel(
            device, *devices[device], dict(counts[device]), {b: dict(c) for b, c in by_background[device].items()}
        )
        for device in devices
    ]
