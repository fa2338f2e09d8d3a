"""Checking a batch before anything is stored: every malformed body is a 400 naming the record and field.

These ran into PostgreSQL and came back as 500s; now parse_batch refuses each (no database needed).
"""

from __future__ import annotations

import json

import pytest

from leaf_collector.records import BadBatch, parse_batch
from leaf_wire import protocol
from tests.helpers.collector import record


def body(*records: dict, schema: object = 1) -> bytes:
    return json.dumps({"schema": schema, "records": list(records)}).encode()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"quality": {"brightness": float("nan")}}, "quality"),
        ({"latency": {"total_ms": float("inf")}}, "latency"),
        ({"photo_bytes": 2**63}, "photo_bytes"),
        ({"crop": "\ud800"}, "crop"),
        ({"condition": "rust \udfff"}, "condition"),
        ({"note": "\ud83d"}, "extra fields"),
    ],
    ids=[
        "nan-in-quality",
        "infinity-in-latency",
        "photo-bytes-2**63",
        "surrogate-crop",
        "surrogate-condition",
        "surrogate-extra",
    ],
)
def test_a_bad_value_refuses_its_record_naming_the_field(changes: dict, field: str) -> None:
    good, bad = record("pi-01", 0), record("pi-01", 1, **changes)
    _, errors = parse_batch(body(good, bad), "pi-01")
    assert [e.index for e in errors] == [1] and field in errors[0].reason and errors[0].id == bad["id"]


def test_a_number_json_reads_as_infinity_is_refused() -> None:
    text = body(record("pi-01")).decode().replace('"probability": 0.91', '"probability": 1e400')
    _, errors = parse_batch(text.encode(), "pi-01")
    assert errors and "topk" in errors[0].reason


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b'{"schema": 1, "records": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}", "nested too deeply"),
        (b'{"schema": 1, "records": [{"photo_bytes": 1' + b"0" * 5000 + b"}]}", "value no record has"),
        (json.dumps({"schema": True, "records": []}).encode(), "unsupported schema True"),
        (json.dumps({"schema": 1.0, "records": []}).encode(), "unsupported schema 1.0"),
    ],
    ids=["nested-100000", "5000-digit-integer", "schema-true", "schema-float"],
)
def test_a_malformed_body_is_a_bad_batch(raw: bytes, words: str) -> None:
    with pytest.raises(BadBatch, match=words):
        parse_batch(raw, "pi-01")


def test_a_good_batch_still_passes() -> None:
    valid, errors = parse_batch(body(record("pi-01"), record("pi-01", 1)), "pi-01")
    assert errors == [] and len(valid) == 2 and protocol.SCHEMA_VERSION == 1
