"""Text renderings of stored diagnoses for the `appliance history` command.

The table is for a person at a terminal (local time, as wide as the terminal, cells cut with '…');
JSON lines are for tools (every stored field). The CSV is the export's (appliance.export.exporter.diagnoses_csv).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import datetime, tzinfo
from typing import Any

from appliance.probabilities import shown_percent

_HEADERS = ("time", "verdict", "crop", "condition", "sure", "record")
# Columns that give up width first when the table is too wide, with the least each keeps.
_SHRINK_ORDER = ((5, 8), (3, 10), (2, 8), (1, 6))
_GAP = "  "
_ELLIPSIS = "…"
EMPTY_MESSAGE = "No diagnoses recorded yet."


def format_table(rows: Iterable[Mapping[str, Any]], *, width: int = 80, tz: tzinfo | None = None) -> str:
    """Aligned columns within `width` display cells; long cells end in '…'. tz=None means the Pi's local zone."""
    cells = [_table_cells(row, tz) for row in rows]
    if not cells:
        return EMPTY_MESSAGE + "\n"
    widths = [max(display_width(line[i]) for line in [_HEADERS, *cells]) for i in range(len(_HEADERS))]
    _fit(widths, width)
    lines = [
        _GAP.join(_fit_cell(text, w, right=(i == 4)) for i, (text, w) in enumerate(zip(line, widths, strict=True)))
        for line in [_HEADERS, *cells]
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def format_json(rows: Iterable[Mapping[str, Any]]) -> str:
    """JSON lines, one row as stored per line (JSON columns nested), as `diagnose --json` writes; non-ASCII kept."""
    return "".join(json.dumps(dict(row), ensure_ascii=False) + "\n" for row in rows)


def _table_cells(row: Mapping[str, Any], tz: tzinfo | None) -> tuple[str, ...]:
    verdict = str(row.get("verdict") or "")
    if verdict in ("retake", "unknown") and row.get("reason"):
        verdict = f"{verdict}: {str(row['reason']).replace('_', ' ')}"
    probability = row.get("top1_probability")
    # As on the screen: a confidence only for a diagnosis (a retake's score is not one), never 100%.
    confidence = (
        f"{shown_percent(probability)}%"
        if row.get("verdict") == "diagnosis" and isinstance(probability, int | float)
        else ""
    )
    return (
        _local_time(row.get("created_at"), tz),
        verdict,
        _one_line(row.get("crop")),
        _one_line(row.get("condition")),
        confidence,
        str(row.get("id") or ""),  # the id in the log, the export's photos/<id>.jpg and the collector
    )


def _local_time(value: Any, tz: tzinfo | None) -> str:
    if not value:
        return ""
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _one_line(value: Any) -> str:
    return " ".join(str(value or "").split())


def _fit(widths: list[int], limit: int) -> None:
    """Shrink flexible columns, in order, until the row fits (or all are at their minimum)."""
    excess = sum(widths) + len(_GAP) * (len(widths) - 1) - limit
    for column, minimum in _SHRINK_ORDER:
        if excess <= 0:
            return
        give = min(excess, max(0, widths[column] - minimum))
        widths[column] -= give
        excess -= give


def display_width(text: str) -> int:
    """Terminal cells: wide East Asian characters take two, combining marks none."""
    total = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        total += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return total


def _fit_cell(text: str, width: int, *, right: bool = False) -> str:
    if display_width(text) > width:
        text = _truncate(text, width)
    pad = " " * (width - display_width(text))
    return pad + text if right else text + pad


def _truncate(text: str, width: int) -> str:
    kept = ""
    for char in text:
        if display_width(kept + char) > width - 1:
            break
        kept += char
    return kept + _ELLIPSIS
