"""Value checks for config fields: each returns why a value is wrong, or None; `_about` attaches one to a field."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance.config.toml_out import _toml_string

Check = Callable[[Any], str | None]  # returns the reason a value is wrong, or None


# ---------------------------------------------------------------- value checks


def _show(value: Any) -> str:
    """A value as it would be written in TOML, for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return _toml_string(str(value))
    if isinstance(value, int) and value.bit_length() > 64:
        return "an integer too large to be a setting"  # its digits may be thousands long (or too many to print)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"a {type(value).__name__}"


def _between(lo: float, hi: float, what: str | None = None) -> Check:
    def check(value: Any) -> str | None:
        if lo <= value <= hi:
            return None
        expected = f"{what} {lo}-{hi}" if what else f"between {lo} and {hi}"
        return f"must be {expected}, got {_show(value)}"

    return check


def _zero_or_between(lo: float, hi: float, zero_means: str) -> Check:
    def check(value: Any) -> str | None:
        if value == 0 or lo <= value <= hi:
            return None
        return f"must be 0 ({zero_means}) or between {lo} and {hi}, got {_show(value)}"

    return check


def _at_least(lo: float) -> Check:
    def check(value: Any) -> str | None:
        return None if value >= lo else f"must be at least {lo}, got {_show(value)}"

    return check


def _one_of(*choices: Any) -> Check:
    def check(value: Any) -> str | None:
        if value in choices:
            return None
        listed = ", ".join(_show(c) for c in choices)
        return f"must be one of {listed}, got {_show(value)}"

    return check


def _matches(pattern: str, description: str, *, allow_empty: str | None = None) -> Check:
    compiled = re.compile(pattern)

    def check(value: str) -> str | None:
        if (allow_empty and value == "") or compiled.fullmatch(value):
            return None
        empty = f"empty ({allow_empty}) or " if allow_empty else ""
        return f"must be {empty}{description}, got {_show(value)}"

    return check


_bcm_pin = _between(0, 27, "a BCM GPIO number")


def _known_language(value: str) -> str | None:
    """A language the labels are written in ("fr-CA" counts when "fr" is): it fell back to English silently."""
    from appliance.words import known_languages

    known = known_languages()
    if re.fullmatch(r"[a-z]{2}(-[A-Z]{2})?", value) and value.split("-")[0] in known:
        return None
    return f"must be a language the appliance has words in ({', '.join(known)}), got {_show(value)}"


def _about(doc: str, check: Check | None = None, normalize: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """A key's field metadata: a one-line comment (for `config show` and the example file) and its check."""
    return {"doc": doc, "check": check, "normalize": normalize}


def _url_shape(value: str) -> str | None:
    """The collector URL's form; whether plain http is allowed is a rule between keys."""
    if value == "":
        return None
    try:
        parts = urllib.parse.urlsplit(value)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        return f'must be a URL like "https://collector.example.org", got {_show(value)} ({exc})'
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f'must start with https:// and name a host, like "https://collector.example.org", got {_show(value)}'
    if parts.username is not None or parts.password is not None:
        return "must not contain a user name or password; the device's token goes in sync.token_file"
    if parts.query or parts.fragment:
        return f"must not have a ?query or #fragment, got {_show(value)}"
    return None
