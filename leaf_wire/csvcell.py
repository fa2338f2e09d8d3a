"""One rule for a CSV cell that a spreadsheet opens: text it would run as a formula gets a leading apostrophe.

Every CSV this project writes (the USB export, `appliance history --csv`, the collector's
download) is written by csv_chunks: BOM first, so Excel reads UTF-8, CRLF line ends, and every
cell through safe_cell.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

BOM = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """Text a spreadsheet would execute gets a leading apostrophe; numbers stay numbers."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def unsafe_cell(text: str) -> str:
    """Undo safe_cell for one parsed cell (for tools that read the CSV back)."""
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_STARTS) else text


def csv_chunks(header: Sequence[str], rows: Iterable[Sequence[Any]], rows_per_chunk: int = 500) -> Iterator[str]:
    """The one CSV writer: BOM and header first, then guarded rows, CRLF line ends, in chunks for streaming."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")

    def take() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(header)
    yield BOM + take()
    for count, row in enumerate(rows, 1):
        writer.writerow([safe_cell(cell) for cell in row])
        if count % rows_per_chunk == 0:
            yield take()
    rest = take()
    if rest:
        yield rest


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """The whole CSV as one string (write it as UTF-8)."""
    return "".join(csv_chunks(header, rows))
