"""The files an agronomist opens: diagnoses.csv, diagnoses.jsonl, README.txt, manifest.sha256.

CSV: UTF-8 with a byte-order mark and commas, CRLF line ends, '.' as decimal point. Excel
needs the BOM to read UTF-8 (without it "Café" turns into mojibake); LibreOffice and Python's
csv module (encoding "utf-8-sig") read it too. Times are ISO 8601 in UTC. A text cell that a
spreadsheet would run as a formula (starting with = + - @, tab or carriage return) gets a
leading apostrophe. JSONL keeps every stored field exactly, for tools.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from appliance import labels
from leaf_wire import reasons
from leaf_wire.csvcell import csv_text

CSV_NAME = "diagnoses.csv"
JSONL_NAME = "diagnoses.jsonl"
README_NAME = "README.txt"
SNAPSHOT_NAME = "diagnoses.sqlite3"
MANIFEST_NAME = "manifest.sha256"
PHOTOS_DIR = "photos"

PHOTO_INCLUDED = "included"
PHOTO_PRUNED = "pruned"
PHOTO_MISSING = "missing"

# (column, what it means) in file order; README.txt is generated from this list.
CSV_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "the diagnosis's unique id (also the photo's file name)"),
    ("created_at_utc", "when the photo was taken, ISO 8601 in UTC (Z); add your time zone's offset for local time"),
    ("device_id", "which appliance took it"),
    (
        "verdict",
        "diagnosis = the appliance named a condition; retake = it refused and asked for a new photo; "
        "unknown = the photo was fine but showed a plant or condition its model does not know",
    ),
    ("retake_reason", "why it asked for a retake (no_leaf, blurred, too_dark, too_bright, not_sure); empty otherwise"),
    ("retake_text", "the retake reason in words"),
    ("unknown_reason", "why it did not know (other_plant, unknown_condition); empty otherwise"),
    ("unknown_text", "the unknown reason in words"),
    ("crop", "the crop shown on the screen (empty for a retake; for unknown_condition, the crop it recognised)"),
    ("condition", "the condition shown on the screen (for a retake: what was wrong with the photo)"),
    ("crops", "the crops the appliance chose among, e.g. apple; empty = every crop its model knew"),
    ("top1_slug", "the model's first choice, as its class name crop__condition"),
    ("top1_name", "the first choice in words"),
    ("top1_probability", "its calibrated confidence, 0 to 1"),
    ("top2_slug", "second choice"),
    ("top2_name", "second choice in words"),
    ("top2_probability", "its confidence, 0 to 1"),
    ("top3_slug", "third choice"),
    ("top3_name", "third choice in words"),
    ("top3_probability", "its confidence, 0 to 1"),
    ("quality_brightness", "mean brightness of the photo, 0-255"),
    ("quality_sharpness", "sharpness (variance of the Laplacian); low means blurred"),
    ("quality_plant_fraction", "share of leaf-coloured pixels, 0 to 1"),
    ("quality_dark_fraction", "share of nearly black pixels, 0 to 1"),
    ("quality_bright_fraction", "share of nearly white pixels, 0 to 1"),
    ("model_version", "the classifier version that made the diagnosis"),
    ("model_sha256", "the classifier file's SHA-256"),
    ("photo_file", "the photo in this folder (photos/<id>.jpg); empty when not included"),
    ("photo_status", "included; pruned = deleted on the appliance after an earlier export (see that export); missing"),
    ("photo_sha256", "the photo's SHA-256 as recorded when it was taken"),
    ("photo_bytes", "the photo's size in bytes"),
)
CSV_HEADER = tuple(name for name, _ in CSV_COLUMNS)


def photo_name(row: Mapping[str, Any]) -> str:
    return f"{row['id']}.jpg"


def photo_file(row: Mapping[str, Any], status: str) -> str:
    return f"{PHOTOS_DIR}/{photo_name(row)}" if status == PHOTO_INCLUDED else ""


def class_name(slug: str | None, language: str) -> str:
    if not slug:
        return ""
    words = labels.label(slug, language)
    return f"{words.crop}: {words.condition}" if words.crop else words.condition


def csv_cells(row: Mapping[str, Any], status: str, language: str) -> list[Any]:
    top = list(row.get("topk") or [])
    quality = row.get("quality") or {}
    reason = row.get("reason") or ""
    unknown = row["verdict"] == "unknown"
    retake_reason, unknown_reason = ("", reason) if unknown else (reason, "")
    crops = row.get("crops") or []
    ranked: list[Any] = []
    for index in range(3):
        if index < len(top):
            slug = top[index].get("slug")
            ranked += [slug, class_name(slug, language), top[index].get("probability")]
        else:
            ranked += ["", "", ""]
    cells = [
        row["id"],
        row["created_at"],
        row["device_id"],
        row["verdict"],
        retake_reason,
        reasons.retake_words(retake_reason, language)[0] if retake_reason else "",
        unknown_reason,
        reasons.unknown_words(unknown_reason, language)[0] if unknown_reason else "",
        row.get("crop") or "",
        row.get("condition") or "",
        ", ".join(crops) if isinstance(crops, list) else str(crops),
        *ranked,
        quality.get("brightness"),
        quality.get("sharpness"),
        quality.get("plant_fraction"),
        quality.get("dark_fraction"),
        quality.get("bright_fraction"),
        row["model_version"],
        row["model_sha256"],
        photo_file(row, status),
        status,
        row["photo_sha256"],
        row["photo_bytes"],
    ]
    return cells


def render_csv(rows: Iterable[tuple[Mapping[str, Any], str]], language: str) -> bytes:
    return csv_text(CSV_HEADER, (csv_cells(row, status, language) for row, status in rows)).encode("utf-8")


def render_jsonl(rows: Iterable[tuple[Mapping[str, Any], str]]) -> bytes:
    lines = []
    for row, status in rows:
        record = {**row, "photo_file": photo_file(row, status), "photo_status": status}
        lines.append(json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False))
    return ("\n".join(lines) + "\n" if lines else "").encode("utf-8")


def render_manifest(digests: Mapping[str, str]) -> bytes:
    """`sha256sum -c` format: '<hex>  <relative path>' per line, sorted."""
    return "".join(f"{digests[name]}  {name}\n" for name in sorted(digests)).encode("ascii")


def parse_manifest(data: bytes) -> dict[str, str]:
    entries: dict[str, str] = {}
    for line in data.decode("ascii").splitlines():
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            raise ValueError(f"bad manifest line {line!r}")
        entries[name] = digest
    return entries


def render_readme(info: Mapping[str, Any]) -> bytes:
    width = max(len(name) for name in CSV_HEADER)
    columns = "\n".join(f"  {name.ljust(width)}  {meaning}" for name, meaning in CSV_COLUMNS)
    kind = "everything the appliance holds (full export)" if info["full"] else "what this stick had not received yet"
    listed = [
        (CSV_NAME, "one row per diagnosis, for a spreadsheet (columns below)"),
        (JSONL_NAME, "the same diagnoses, one JSON object per line, every stored field"),
        (SNAPSHOT_NAME, "a consistent copy of the appliance's whole diagnosis database (SQLite),"),
        ("", "including diagnoses exported earlier"),
        (f"{PHOTOS_DIR}/<id>.jpg", "the photo of each diagnosis (photo_status says when one is not here)"),
        (MANIFEST_NAME, "the SHA-256 of every file above, for sha256sum -c"),
    ]
    name_width = max(len(name) for name, _ in listed)
    files = "\n".join(f"  {name.ljust(name_width)}  {what}" for name, what in listed)
    text = f"""Leaf appliance export
=====================

Device:      {info["device_id"]}
Exported:    {info["exported_at"]}
Contents:    {info["rows"]} diagnoses, {info["photos"]} photos: {kind}
Software:    leaf-appliance {info["software"]}

Files
-----
{files}

Opening the CSV
---------------
UTF-8 with a byte-order mark, comma-separated, '.' as the decimal point, times in UTC.
Excel and LibreOffice open it by double-click where the list separator is a comma. Where
it is a semicolon (e.g. Brazil, much of Europe), use Data > From Text/CSV (Excel) or the
import dialog (LibreOffice) and choose comma and UTF-8. A text cell that starts with
= + - or @ was given a leading apostrophe so that it is never run as a formula.

Checking the copy
-----------------
Linux/macOS:  sha256sum -c {MANIFEST_NAME}      (every line must say OK)
Windows:      Get-FileHash -Algorithm SHA256 <file>   in PowerShell, compare with {MANIFEST_NAME}

Columns of {CSV_NAME}
{"-" * (len(CSV_NAME) + 11)}
{columns}
"""
    return text.replace("\n", "\r\n").encode("utf-8")
