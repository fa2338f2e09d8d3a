"""One small generic validator driven by the type hints and each field's check; every problem at once."""

from __future__ import annotations

import difflib
import math
import os
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

from appliance.config.checks import _show
from appliance.config.introspect import _field_types, _section_types
from appliance.config.schema import UNIX_SOCKET_PATH_MAX, Config
from leaf_wire.addresses import is_loopback_host


class _Problems:
    """Collects (key, reason) pairs so that every mistake in a file is reported in one go."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, key: str, reason: str) -> None:
        self.items.append((key, reason))

    @property
    def keys(self) -> set[str]:
        return {key for key, _ in self.items}

    def lines(self, source: str) -> list[str]:
        return [f"{source}: {key}: {reason}" for key, reason in self.items]


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return "a date/time"


def _wrong_type(expected: str, value: Any) -> str:
    if isinstance(value, bool | int | float | str):
        return f"must be {expected}, got {_show(value)} ({_kind_of(value)})"
    return f"must be {expected}, got {_kind_of(value)}"


def _coerce(hint: Any, value: Any) -> tuple[Any, str | None]:
    """Converts a TOML value to the declared type, or says why it cannot."""
    if hint is bool:
        return (value, None) if isinstance(value, bool) else (None, _wrong_type("true or false", value))
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value, None
        return None, _wrong_type("a whole number", value)
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)  # an integer beyond float's range raises here
            except OverflowError:
                return None, "must be a number of ordinary size, got an integer too large for one"
            if not math.isfinite(number):
                return None, f"must be a finite number, got {_show(value)}"
            return number, None
        return None, _wrong_type("a number", value)
    if hint is str:
        return (value, None) if isinstance(value, str) else (None, _wrong_type("a string", value))
    if hint is Path or hint == Path | None:
        optional = hint != Path
        if not isinstance(value, str):
            return None, _wrong_type("a path in quotes", value)
        if value == "":
            return (None, None) if optional else (None, "must not be empty")
        if "\0" in value:
            return None, "must not contain a NUL character"
        path = Path(value).expanduser()
        if not path.is_absolute():
            return None, f'must be an absolute path (starting with "/" or "~/"), got {_show(value)}'
        return path, None
    if hint == tuple[str, ...] | None:
        if not isinstance(value, list):
            return None, _wrong_type("a list of strings in [brackets]", value)
        if not all(isinstance(v, str) for v in value):
            return None, 'must be a list of strings in quotes, like ["apple"]'
        return tuple(v.strip().lower() for v in value), None
    raise TypeError(f"no rule for type {hint!r}")  # a schema bug, not a user mistake


def _suggest(word: str, candidates: list[str]) -> str | None:
    matches = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _where_else(key: str, section_types: dict[str, type]) -> str | None:
    """The section that has ``key``, for a key written under the wrong heading."""
    for name, section_type in section_types.items():
        if key in {f.name for f in fields(section_type)}:
            return name
    return None


def _parse_section(name: str, section_type: type, raw: dict[str, Any], problems: _Problems) -> Any:
    hints = _field_types(section_type)
    known = [f.name for f in fields(section_type)]
    values: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = f"{name}.{key}"
        if key not in hints:
            close = _suggest(key, known)
            elsewhere = _where_else(key, _section_types())
            if close:
                problems.add(dotted, f"unknown key; did you mean '{name}.{close}'?")
            elif elsewhere:
                problems.add(dotted, f"unknown key in [{name}]; did you mean '{elsewhere}.{key}' under [{elsewhere}]?")
            else:
                problems.add(dotted, f"unknown key; [{name}] has: {', '.join(known)}")
            continue
        converted, reason = _coerce(hints[key], value)
        metadata = section_type.__dataclass_fields__[key].metadata
        if reason is None and converted is not None and metadata["check"]:
            reason = metadata["check"](converted)
        if reason is None and converted is not None and metadata["normalize"]:
            converted = metadata["normalize"](converted)
        if reason:
            problems.add(dotted, reason)
        else:
            values[key] = converted
    return section_type(**values)


def _parse(raw: dict[str, Any], problems: _Problems) -> Config:
    section_types = _section_types()
    sections: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in section_types:
            owner = _where_else(name, section_types)
            close = _suggest(name, list(section_types))
            if owner and not isinstance(value, dict):
                problems.add(name, f"keys belong in a section; did you mean '{owner}.{name}' under [{owner}]?")
            elif close:
                problems.add(name, f"unknown section; did you mean [{close}]?")
            else:
                problems.add(name, f"unknown section; the sections are: {', '.join(section_types)}")
            continue
        if not isinstance(value, dict):
            problems.add(name, f"must be a table written as [{name}], got {_kind_of(value)}")
            continue
        sections[name] = _parse_section(name, section_types[name], value, problems)
    return Config(**sections)


def _check_consistency(config: Config, problems: _Problems) -> None:
    """Rules between keys; a rule is skipped when one of its keys already has a problem."""
    bad = problems.keys

    def ok(*keys: str) -> bool:
        return not bad.intersection(keys)

    q = config.quality
    if ok("quality.min_brightness", "quality.max_brightness") and q.max_brightness <= q.min_brightness:
        problems.add(
            "quality.max_brightness",
            f"must be greater than quality.min_brightness ({_show(q.min_brightness)}), got {_show(q.max_brightness)}",
        )
    s = config.storage
    if ok("storage.warn_below_mb", "storage.refuse_below_mb") and s.refuse_below_mb > s.warn_below_mb:
        problems.add(
            "storage.refuse_below_mb",
            f"must be at most storage.warn_below_mb ({s.warn_below_mb}), got {s.refuse_below_mb}",
        )
    for key, other, pin in _pin_collisions(config):
        if ok(key, other):
            problems.add(key, f"GPIO {pin} is also used by {other}; give each its own pin")
    _check_sync(config, ok, problems)


def _check_sync(config: Config, ok: Callable[..., bool], problems: _Problems) -> None:
    y = config.sync
    if ok("sync.enabled", "sync.url") and y.enabled and not y.url:
        problems.add("sync.url", 'must be set when sync.enabled = true, like "https://collector.example.org"')
    if ok("sync.url", "sync.allow_insecure_http") and y.url.startswith("http://"):
        host = urllib.parse.urlsplit(y.url).hostname or ""
        if not y.allow_insecure_http and not is_loopback_host(host):
            problems.add(
                "sync.url",
                f"must use https:// for a host other than this machine (the token would travel in clear), got "
                f"{_show(y.url)}; use https, or set sync.allow_insecure_http = true on a network you trust",
            )


def _used_pins(config: Config) -> list[tuple[str, int]]:
    used = []
    if config.button.kind == "gpio":
        used.append(("button.pin", config.button.pin))
    led_keys = {"gpio": ("green_pin", "amber_pin", "red_pin"), "rgb": ("red_pin", "green_pin", "blue_pin")}
    for name in led_keys.get(config.leds.kind, ()):
        used.append((f"leds.{name}", getattr(config.leds, name)))
    return used


def _pin_collisions(config: Config) -> Iterator[tuple[str, str, int]]:
    seen: dict[int, str] = {}
    for key, pin in _used_pins(config):
        if pin in seen:
            yield key, seen[pin], pin
        else:
            seen[pin] = key


def _check_effective(config: Config, problems: _Problems) -> None:
    """Rules on the configuration as it will run (after --simulate changed it)."""
    if problems.keys & {"device.data_dir", "daemon.control_socket"}:
        return
    length = len(os.fsencode(config.control_socket_path))
    if length > UNIX_SOCKET_PATH_MAX:
        problems.add(
            "daemon.control_socket",
            f"the control socket path {str(config.control_socket_path)!r} is {length} bytes, more than a Unix "
            f"socket allows ({UNIX_SOCKET_PATH_MAX}); set daemon.control_socket to a shorter path",
        )
