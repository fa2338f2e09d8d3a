"""One rule for a CSV cell that a spreadsheet opens: text it would run as a formula gets a leading apostrophe.

Every CSV this project writes (the USB export, `appliance history --csv`, the collector's
download) starts with BOM, so Excel reads UTF-8, and passes each cell through safe_cell.
"""

from __future__ import annotations

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
