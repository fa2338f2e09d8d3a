"""Values written back as TOML (`appliance config` prints the effective file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _toml_string(text: str) -> str:
    escapes = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
    out = []
    for char in text:
        if char in escapes:
            out.append(escapes[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _toml_line(name: str, value: Any) -> str:
    """``name = value``; a list left out (None: "absent" is its default) is written commented out."""
    if value is None and name in _ABSENT_BY_DEFAULT:
        return f"# {name} = {_ABSENT_BY_DEFAULT[name]}"
    return f"{name} = {_toml_value(value)}"


# Keys whose default is to be left out of the file, with an example value for the commented line.
_ABSENT_BY_DEFAULT = {"crops": '["apple"]'}


def _toml_value(value: Any) -> str:
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str | Path):
        return _toml_string(str(value))
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
