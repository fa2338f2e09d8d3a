"""History output for people (table) and tools (JSON, CSV), from rows a real store returns."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from appliance.export.exporter import diagnoses_csv
from appliance.export.formats import CSV_HEADER
from appliance.result import Diagnosis, Quality, Ranked, RetakeReason, Timings, Verdict
from appliance.store import SqliteStore
from appliance.store.history import EMPTY_MESSAGE, display_width, format_json, format_table
from appliance.vision.jpeg import encode_jpeg
from leaf_wire.csvcell import BOM

JPEG = encode_jpeg(np.full((16, 16, 3), 128, dtype=np.uint8))
NAIROBI = timezone(timedelta(hours=3))


def diagnosis(crop: str, condition: str, p: float, *, reason: RetakeReason | None = None) -> Diagnosis:
    return Diagnosis(
        verdict=Verdict.RETAKE if reason else Verdict.DIAGNOSIS,
        reason=reason,
        top=(Ranked("slug_a", p), Ranked("slug_b", 1 - p)),
        quality=Quality(120.0, 0.0, 0.0, 300.0, 0.5),
        timings=Timings(),
        model_version="leafnet-1",
        model_sha256="cd" * 32,
        crop=crop,
        condition=condition,
    )


@pytest.fixture
def rows(tmp_path: Path) -> list[dict]:
    with SqliteStore.open(tmp_path / "d.sqlite3", tmp_path / "data") as store:
        when = datetime(2024, 5, 17, 6, 5, 9, 250000, tzinfo=UTC)
        store.record(
            diagnosis("Tomate", "Mildiou précoce", 0.875),
            JPEG,
            device_id="pi-é",
            latency={"total_ms": 80.5},
            created_at=when,
        )
        store.record(
            diagnosis("", "", 0.42, reason=RetakeReason.TOO_DARK),
            JPEG,
            device_id="pi-é",
            latency={"total_ms": 20.0},
            created_at=when + timedelta(minutes=3),
        )
        store.record(
            diagnosis("番茄", "早疫病 ✓", 0.99),
            JPEG,
            device_id="pi-é",
            latency={"total_ms": 70.0},
            created_at=when + timedelta(minutes=9),
        )
        return store.recent()


def test_table_shows_local_time_verdict_words_confidence_and_record_id(rows: list[dict]) -> None:
    text = format_table(rows, tz=NAIROBI, width=140)
    lines = text.splitlines()
    assert lines[0].split() == ["time", "verdict", "crop", "condition", "sure", "record"]
    assert len(lines) == 1 + 3
    newest, retake, oldest = lines[1:]
    assert newest.startswith("2024-05-17 09:14")  # 06:14 UTC in Nairobi
    assert "番茄" in newest and "早疫病 ✓" in newest and "99%" in newest  # capped as on screen
    assert "retake: too dark" in retake and "%" not in retake  # a retake's score is no confidence
    assert oldest.startswith("2024-05-17 09:05")
    assert "Tomate" in oldest and "Mildiou précoce" in oldest and "88%" in oldest
    assert oldest.endswith(rows[2]["id"])  # the id of the log, the export's photos/<id>.jpg and the collector
    for line in lines:
        assert display_width(line) <= 140


def test_table_columns_line_up_in_display_cells(rows: list[dict]) -> None:
    lines = format_table(rows, tz=NAIROBI).splitlines()
    header = lines[0]
    conf_end = display_width(header[: header.index("sure") + len("sure")])
    for line in (lines[1], lines[3]):  # the diagnoses
        percent = line.index("%")
        assert display_width(line[: percent + 1]) == conf_end  # right-aligned under the header


def test_long_words_are_truncated_to_fit_the_terminal(rows: list[dict]) -> None:
    long_row = dict(rows[0], crop="Pomme de terre " * 4, condition="Flétrissement bactérien " * 4)
    for width in (80, 72):
        lines = format_table([long_row, *rows], tz=NAIROBI, width=width).splitlines()
        assert all(display_width(line) <= width for line in lines)
        assert "…" in lines[1]


def test_empty_history_says_so() -> None:
    assert format_table([]) == EMPTY_MESSAGE + "\n"
    assert format_json([]) == ""  # no lines
    assert list(csv.reader(io.StringIO(diagnoses_csv(None, [], "en").removeprefix(BOM)))) == [list(CSV_HEADER)]


def test_csv_cells_a_spreadsheet_would_run_get_an_apostrophe(tmp_path: Path) -> None:
    """`history --csv` opened in Excel must not run a hostile crop name as a formula (as the export's CSV)."""
    with SqliteStore.open(tmp_path / "d.sqlite3", tmp_path / "data") as store:
        store.record(diagnosis('=HYPERLINK("http://x")', "@SUM(A1)", 0.9), JPEG, device_id="pi-1", latency={})
        text = diagnoses_csv(store, store.recent(), "en")
    parsed = next(csv.DictReader(io.StringIO(text.removeprefix(BOM), newline="")))
    assert parsed["crop"] == '\'=HYPERLINK("http://x")' and parsed["condition"] == "'@SUM(A1)"
    assert parsed["top1_probability"] == "0.9"  # numbers stay numbers


def test_json_is_one_row_a_line_that_loads_back_to_the_rows(rows: list[dict]) -> None:
    """The same JSON lines as `diagnose --json`; it was a pretty-printed array."""
    text = format_json(rows)
    assert "番茄" in text and "précoce" in text  # readable, not \\u-escaped
    assert [json.loads(line) for line in text.splitlines()] == rows
