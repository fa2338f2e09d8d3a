"""Checking a batch from a device before anything is stored: a batch is taken whole or not at all.

Every problem is reported per record (index, id, reason) so the device can hold back just the
records the collector will not take and send the others. Keys this version does not know are
kept in `extra` rather than refused: a device updated before its collector must still sync.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from leaf_wire import protocol

_TEXT_MAX = 200
_JSON_MAX = 16 * 1024
_PHOTO_BYTES_MAX = 2**40  # a photo's size in bytes; PostgreSQL's bigint ends at 2**63 - 1
_HEX64 = re.compile(r"[0-9a-f]{64}")
_DEVICE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_KNOWN = {*protocol.RECORD_COLUMNS, protocol.THUMBNAIL_FIELD, protocol.PHOTO_FIELD}


class BadBatch(ValueError):
    """The request as a whole is unusable (not JSON, wrong shape, too many records)."""


@dataclass(frozen=True)
class RecordError:
    index: int
    id: str | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "id": self.id, "reason": self.reason}


@dataclass(frozen=True)
class ValidRecord:
    sent_id: str  # the id as the device wrote it: the acknowledgement repeats it
    id: uuid.UUID
    created_at: datetime
    model_version: str
    model_sha256: str
    verdict: str
    reason: str | None
    top1_slug: str | None
    top1_probability: float | None
    crop: str
    condition: str
    crops: str  # JSON text: the crop keys the device chose among; [] = every crop its model knew
    topk: str  # JSON text
    quality: str
    latency: str
    photo_sha256: str
    photo_bytes: int | None
    extra: str | None
    thumbnail: bytes | None
    photo: bytes | None


def is_device_id(text: str) -> bool:
    return bool(_DEVICE_ID.fullmatch(text))


def parse_batch(body: bytes, device_id: str) -> tuple[list[ValidRecord], list[RecordError]]:
    """The batch's records in request order (an id may repeat), and every reason some are refused.

    When any record is refused, none of the batch may be stored.
    """
    try:
        payload = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BadBatch(f"the body is not UTF-8 (bad byte at offset {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise BadBatch(f"the body is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise BadBatch("the body is nested too deeply to be a batch") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise BadBatch(f"the body holds a value no record has: {exc}"[:200]) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("records"), list):
        raise BadBatch('the body must be a JSON object {"schema": 1, "records": [...]}')
    schema = payload.get("schema")
    if type(schema) is not int or schema != protocol.SCHEMA_VERSION:  # true == 1 in Python: not a schema
        raise BadBatch(f"unsupported schema {schema!r:.40}; this collector speaks schema 1")
    records = payload["records"]
    if len(records) > protocol.MAX_RECORDS_PER_BATCH:
        raise BadBatch(f"{len(records)} records in one batch; send at most {protocol.MAX_RECORDS_PER_BATCH}")
    valid: list[ValidRecord] = []
    errors: list[RecordError] = []
    for index, raw in enumerate(records):
        try:
            valid.append(_record(raw, device_id))
        except _Refused as exc:
            rid = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
            errors.append(RecordError(index, rid, str(exc)))
    return valid, errors


class _Refused(ValueError):
    pass


def _record(raw: Any, device_id: str) -> ValidRecord:
    if not isinstance(raw, dict):
        raise _Refused("a record must be a JSON object")
    rid = _uuid(raw.get("id"))
    sender = raw.get("device_id")
    if sender != device_id:
        raise _Refused(f"device_id {sender!r} does not match this token's device {device_id!r}")
    photo_sha256 = _text(raw, "photo_sha256", empty_ok=True).lower()
    if photo_sha256 and not _HEX64.fullmatch(photo_sha256):
        raise _Refused("photo_sha256 must be 64 hex digits or empty")
    photo = _jpeg(raw, protocol.PHOTO_FIELD, None)
    if photo is not None and protocol.sha256_hex(photo) != photo_sha256:
        raise _Refused("the photo's SHA-256 does not match photo_sha256 (damaged in transit or on the device)")
    extra = {k: v for k, v in raw.items() if k not in _KNOWN}
    return ValidRecord(
        sent_id=raw["id"],
        id=rid,
        created_at=_timestamp(raw.get("created_at")),
        model_version=_text(raw, "model_version"),
        model_sha256=_text(raw, "model_sha256", empty_ok=True),
        verdict=_verdict(raw.get("verdict")),
        reason=_optional_text(raw, "reason"),
        top1_slug=_optional_text(raw, "top1_slug"),
        top1_probability=_probability(raw.get("top1_probability")),
        crop=_text(raw, "crop", empty_ok=True),
        condition=_text(raw, "condition", empty_ok=True),
        crops=_crops(raw.get("crops")),
        topk=_json(raw, "topk", list),
        quality=_json(raw, "quality", dict),
        latency=_json(raw, "latency", dict),
        photo_sha256=photo_sha256,
        photo_bytes=_count(raw.get("photo_bytes")),
        extra=_dumps(extra, "extra fields") if extra else None,
        thumbnail=_jpeg(raw, protocol.THUMBNAIL_FIELD, protocol.THUMBNAIL_MAX_BYTES),
        photo=photo,
    )


def _uuid(value: Any) -> uuid.UUID:
    if not isinstance(value, str):
        raise _Refused("id must be a UUID string")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise _Refused(f"id {value[:60]!r} is not a UUID") from None


def _timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise _Refused("created_at must be an ISO 8601 time string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _Refused(f"created_at {value[:40]!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise _Refused(f"created_at {value!r} has no time zone (send UTC with 'Z')")
    if not 1970 <= moment.year <= 9000:
        raise _Refused(f"created_at {value!r} is out of range")
    return moment


VERDICTS = ("diagnosis", "retake", "unknown")


def _verdict(value: Any) -> str:
    if value not in VERDICTS:
        raise _Refused(f"verdict must be 'diagnosis', 'retake' or 'unknown', got {value!r:.40}")
    return value


def _crops(value: Any) -> str:
    """A list of crop keys; a device older than the crops setting sends none, which means every crop."""
    if value is None:
        return "[]"
    if not isinstance(value, list) or not all(isinstance(c, str) and 0 < len(c) <= 40 for c in value):
        raise _Refused("crops must be a JSON array of crop names (strings of 1-40 characters)")
    return _dumps(value, "crops")


def _text(raw: dict[str, Any], key: str, *, empty_ok: bool = False) -> str:
    value = raw.get(key)
    if not isinstance(value, str):
        raise _Refused(f"{key} must be a string")
    if not value and not empty_ok:
        raise _Refused(f"{key} must not be empty")
    if len(value) > _TEXT_MAX or "\x00" in value:
        raise _Refused(f"{key} must be at most {_TEXT_MAX} characters without NUL")
    if not _is_unicode(value):
        raise _Refused(f"{key} holds an unpaired surrogate (\\ud800-\\udfff): not text PostgreSQL can store")
    return value


def _is_unicode(text: str) -> bool:
    """False for a lone surrogate, which JSON allows (\\ud800) but UTF-8 and PostgreSQL do not."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _optional_text(raw: dict[str, Any], key: str) -> str | None:
    return None if raw.get(key) is None else _text(raw, key, empty_ok=True)


def _probability(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Refused("top1_probability must be a number or null")
    if not 0.0 <= value <= 1.0:
        raise _Refused(f"top1_probability must be between 0 and 1, got {value}")
    return float(value)


def _count(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _PHOTO_BYTES_MAX:
        raise _Refused(f"photo_bytes must be a whole number from 0 to {_PHOTO_BYTES_MAX} or null")
    return value


def _json(raw: dict[str, Any], key: str, kind: type) -> str:
    value = raw.get(key)
    if not isinstance(value, kind):
        raise _Refused(f"{key} must be a JSON {'array' if kind is list else 'object'}")
    return _dumps(value, key)


def _dumps(value: Any, what: str) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:  # NaN, Infinity or 1e400 (which JSON reads as infinity): jsonb refuses them
        raise _Refused(f"{what} must hold finite numbers only (no NaN or Infinity)") from None
    except RecursionError:
        raise _Refused(f"{what} is nested too deeply") from None
    if not _is_unicode(text):
        raise _Refused(f"{what} holds an unpaired surrogate (\\ud800-\\udfff): not text PostgreSQL can store")
    if len(text) > _JSON_MAX or "\\u0000" in text:
        raise _Refused(f"{what} must be at most {_JSON_MAX} characters of JSON without NUL")
    return text


def _jpeg(raw: dict[str, Any], key: str, limit: int | None) -> bytes | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Refused(f"{key} must be a base64 string")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _Refused(f"{key} is not valid base64") from None
    if not data.startswith(b"\xff\xd8\xff"):
        raise _Refused(f"{key} is not a JPEG")
    if limit is not None and len(data) > limit:
        raise _Refused(f"{key} is {len(data)} bytes; at most {limit}")
    return data
