"""The appliance's one configuration file: typed, strict, every mistake reported at once.

A technician provisions many devices from one template, so a typo must stop start-up with a
message that names the file, the key and the reason, instead of being silently ignored. Each
section is a frozen dataclass; the type hints and each field's ``check`` drive one small
generic validator (no pydantic: the install stays lean). The pin and display defaults live
only here; documentation reads them through ``schema()`` and ``default_pins()``.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import socket
import tomllib
import typing
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, NamedTuple

from appliance import labels
from appliance.errors import ConfigError
from leaf_wire.addresses import is_loopback_host

DEFAULT_CONFIG_PATH = Path("/etc/leaf-appliance/config.toml")
DEFAULT_DATA_DIR = Path("/var/lib/leaf-appliance")
SIMULATED_DISPLAY_SIZE = (480, 320)  # what a simulated display uses when width/height are 0
UNIX_SOCKET_PATH_MAX = 107  # bytes, Linux sun_path less the terminating NUL

Check = Callable[[Any], str | None]  # returns the reason a value is wrong, or None


# ---------------------------------------------------------------- value checks


def _show(value: Any) -> str:
    """A value as it would be written in TOML, for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return _toml_string(str(value))
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


# ---------------------------------------------------------------- the schema


@dataclass(frozen=True)
class DeviceConfig:
    id: str = field(
        default="",
        metadata=_about(
            '"" = the hostname; else 1-64 characters A-Z a-z 0-9 . _ -',
            _matches(r"[A-Za-z0-9._-]{1,64}", "1-64 characters of A-Z a-z 0-9 . _ -", allow_empty="use the hostname"),
        ),
    )
    data_dir: Path = field(default=DEFAULT_DATA_DIR, metadata=_about("diagnosis log, photos and runtime files"))
    language: str = field(
        default="en",
        metadata=_about(
            'language code like "en" or "pt-BR"', _matches(r"[a-z]{2}(-[A-Z]{2})?", 'a code like "en" or "pt-BR"')
        ),
    )


@dataclass(frozen=True)
class ModelConfig:
    path: Path | None = field(default=None, metadata=_about('"" = the model shipped with the software'))
    sha256: str = field(
        default="",
        metadata=_about(
            '"" = read <path>.sha256; else the model\'s 64-hex-digit SHA-256',
            _matches(r"[0-9a-fA-F]{64}", "exactly 64 hex digits", allow_empty="read <path>.sha256"),
            normalize=str.lower,
        ),
    )
    # One thread: 26% less CPU time (energy) per diagnosis than two, for +0.5 ms (models/README.md, Speed).
    threads: int = field(default=1, metadata=_about("inference threads, 1-8", _between(1, 8)))
    refuse_below: float = field(
        default=0.0,
        metadata=_about(
            "0 = the model's own threshold; else refuse a diagnosis below this confidence, 0.05-0.99",
            _zero_or_between(0.05, 0.99, "the model's own threshold"),
        ),
    )


def _crop_names(value: tuple[str, ...]) -> str | None:
    if not value:
        return (
            'must name at least one crop, like ["apple"]; leave the key out to choose among every crop the model knows'
        )
    bad = [name for name in value if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name)]
    if bad:
        return f'{_show(bad[0])} is not a crop name (lower-case letters, digits and _, like "apple" or "pepper_bell")'
    return None


@dataclass(frozen=True)
class DiagnosisConfig:
    crops: tuple[str, ...] | None = field(
        default=None,
        metadata=_about(
            "absent = every crop the model knows; else choose among these crops only (checked against the model)",
            _crop_names,
            normalize=labels.crop_keys,
        ),
    )


@dataclass(frozen=True)
class QualityConfig:
    min_brightness: float = field(
        default=40.0, metadata=_about("mean brightness below this asks for a retake, 0-255", _between(0, 255))
    )
    max_brightness: float = field(
        default=225.0, metadata=_about("mean brightness above this asks for a retake, 0-255", _between(0, 255))
    )
    min_sharpness: float = field(
        default=25.0, metadata=_about("sharpness (Laplacian variance) below this asks for a retake", _at_least(0))
    )
    min_plant_fraction: float = field(
        default=0.04,
        metadata=_about("share of plant-coloured pixels below this asks for a retake, 0-1", _between(0, 1)),
    )


@dataclass(frozen=True)
class CameraConfig:
    kind: str = field(
        default="picamera2",
        metadata=_about("picamera2 | opencv | simulated", _one_of("picamera2", "opencv", "simulated")),
    )
    width: int = field(default=2304, metadata=_about("capture width in pixels, 64-9152", _between(64, 9152)))
    height: int = field(default=1296, metadata=_about("capture height in pixels, 64-6944", _between(64, 6944)))
    autofocus: bool = field(default=True, metadata=_about("continuous autofocus (Camera Module 3)"))
    opencv_index: int = field(default=0, metadata=_about("opencv kind: the /dev/video index, 0-63", _between(0, 63)))
    rotate: int = field(
        default=0,
        metadata=_about(
            "0 | 90 | 180 | 270 degrees clockwise: turns a camera mounted on its side upright", _one_of(0, 90, 180, 270)
        ),
    )
    folder: Path | None = field(
        default=None, metadata=_about('simulated kind: photos to replay; "" = the samples shipped with the software')
    )


@dataclass(frozen=True)
class ButtonConfig:
    kind: str = field(default="gpio", metadata=_about("gpio | simulated", _one_of("gpio", "simulated")))
    pin: int = field(default=16, metadata=_about("BCM GPIO number, 0-27", _bcm_pin))
    pull_up: bool = field(default=True, metadata=_about("true: the button connects the pin to ground"))
    bounce_ms: int = field(default=50, metadata=_about("debounce time in milliseconds, 0-1000", _between(0, 1000)))
    long_press_s: float = field(
        default=2.0, metadata=_about("holding this many seconds exports to USB, 0.5-10", _between(0.5, 10))
    )


@dataclass(frozen=True)
class LedsConfig:
    kind: str = field(
        default="gpio",
        metadata=_about("gpio (three LEDs) | rgb (one RGB LED) | simulated", _one_of("gpio", "rgb", "simulated")),
    )
    green_pin: int = field(default=5, metadata=_about("BCM GPIO number (gpio and rgb kinds)", _bcm_pin))
    amber_pin: int = field(default=6, metadata=_about("BCM GPIO number (gpio kind)", _bcm_pin))
    red_pin: int = field(default=13, metadata=_about("BCM GPIO number (gpio and rgb kinds)", _bcm_pin))
    blue_pin: int = field(default=19, metadata=_about("BCM GPIO number (rgb kind)", _bcm_pin))
    active_high: bool = field(
        default=True, metadata=_about("true: a high pin lights the LED (false for common-anode RGB)")
    )


@dataclass(frozen=True)
class DisplayConfig:
    kind: str = field(
        default="framebuffer", metadata=_about("framebuffer | simulated", _one_of("framebuffer", "simulated"))
    )
    device: Path = field(default=Path("/dev/fb0"), metadata=_about("framebuffer device"))
    width: int = field(
        default=0,
        metadata=_about(
            "0 = read from the framebuffer (simulated: 480); else 240-3840", _zero_or_between(240, 3840, "automatic")
        ),
    )
    height: int = field(
        default=0,
        metadata=_about(
            "0 = read from the framebuffer (simulated: 320); else 240-2160", _zero_or_between(240, 2160, "automatic")
        ),
    )
    rotate: int = field(
        default=0,
        metadata=_about("0 | 90 | 180 | 270 degrees clockwise: for a panel mounted turned", _one_of(0, 90, 180, 270)),
    )
    out_dir: Path | None = field(
        default=None, metadata=_about('simulated kind: where PNG frames go; "" = <data_dir>/display')
    )


@dataclass(frozen=True)
class DaemonConfig:
    result_seconds: float = field(
        default=20.0, metadata=_about("how long a result stays on screen, 2-600 seconds", _between(2, 600))
    )
    control_socket: Path | None = field(
        default=None, metadata=_about('simulated button\'s control socket; "" = <data_dir>/control.sock')
    )


@dataclass(frozen=True)
class StorageConfig:
    warn_below_mb: int = field(
        default=500, metadata=_about("warn when free space falls below this many MB", _at_least(0))
    )
    refuse_below_mb: int = field(
        default=100, metadata=_about("stop taking photos below this many MB free; at most warn_below_mb", _at_least(0))
    )


@dataclass(frozen=True)
class SyncConfig:
    enabled: bool = field(
        default=False, metadata=_about("true: send diagnoses to the fleet collector when the network is up")
    )
    url: str = field(
        default="",
        metadata=_about(
            'the collector, like "https://collector.example.org"; http:// only to this machine',
            _url_shape,
        ),
    )
    token_file: Path | None = field(
        default=None,
        metadata=_about('this device\'s token, readable only by the service user; "" = <data_dir>/sync.token'),
    )
    ca_file: Path | None = field(
        default=None, metadata=_about('"" = the system\'s CAs; else a PEM file to trust (a self-signed collector)')
    )
    allow_insecure_http: bool = field(
        default=False, metadata=_about("true: allow http:// to another host (the token travels in clear)")
    )
    interval_s: int = field(
        default=300, metadata=_about("seconds between syncs while all goes well, 10-86400", _between(10, 86400))
    )
    batch_size: int = field(default=100, metadata=_about("diagnoses per request, 1-1000", _between(1, 1000)))
    include_photos: str = field(
        default="thumbnail",
        metadata=_about(
            "none | thumbnail (small JPEG) | full (the photo, and a thumbnail)", _one_of("none", "thumbnail", "full")
        ),
    )
    timeout_s: float = field(
        default=20.0, metadata=_about("give up on one request after this many seconds, 1-300", _between(1, 300))
    )


@dataclass(frozen=True)
class ExportConfig:
    auto_on_insert: bool = field(default=True, metadata=_about("true: export as soon as a USB stick is plugged in"))
    media_root: Path = field(
        default=Path("/media"),
        metadata=_about("where USB sticks are mounted (udev mounts them in /media/leaf-appliance)"),
    )
    folder: Path | None = field(
        default=None,
        metadata=_about(
            '"" = a USB stick under media_root; else export into this folder (simulated: <data_dir>-usb-stick)'
        ),
    )
    prune_exported_photos: bool = field(
        default=True,
        metadata=_about("true: below storage.warn_below_mb free, delete photos already exported, oldest first"),
    )


@dataclass(frozen=True)
class Config:
    device: DeviceConfig = field(default_factory=DeviceConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    diagnosis: DiagnosisConfig = field(default_factory=DiagnosisConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    button: ButtonConfig = field(default_factory=ButtonConfig)
    leds: LedsConfig = field(default_factory=LedsConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    @property
    def device_id(self) -> str:
        """The name this device writes into every diagnosis: the configured id, else the hostname."""
        return self.device.id or socket.gethostname()

    @property
    def data_dir(self) -> Path:
        return self.device.data_dir

    @property
    def db_path(self) -> Path:
        return self.device.data_dir / "diagnoses.sqlite3"

    @property
    def photos_dir(self) -> Path:
        return self.device.data_dir / "photos"

    @property
    def display_out_dir(self) -> Path:
        return self.display.out_dir or self.device.data_dir / "display"

    @property
    def control_socket_path(self) -> Path:
        return self.daemon.control_socket or self.device.data_dir / "control.sock"

    @property
    def sync_token_path(self) -> Path:
        return self.sync.token_file or self.device.data_dir / "sync.token"

    def to_toml(self, *, comments: bool = True) -> str:
        """The effective configuration as TOML that loads back to an equal Config (`appliance config show`)."""
        blocks = []
        for section_field in fields(self):
            section = getattr(self, section_field.name)
            rows = [(f.name, getattr(section, f.name), f.metadata.get("doc", "")) for f in fields(section)]
            texts = [_toml_line(name, value) for name, value, _ in rows]
            width = max(len(text) for text in texts)
            lines = [f"[{section_field.name}]"]
            for text, (_, _, doc) in zip(texts, rows, strict=True):
                lines.append(f"{text.ljust(width)}  # {doc}" if comments and doc else text)
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks) + "\n"


# ---------------------------------------------------------------- schema introspection


class KeySpec(NamedTuple):
    section: str
    name: str
    type_name: str
    default: Any
    doc: str

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.name}"


def _section_types() -> dict[str, type]:
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in fields(Config)}


def _field_types(section_type: type) -> dict[str, Any]:
    return typing.get_type_hints(section_type)


def _default_of(f: Field[Any]) -> Any:
    return f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]


_TYPE_NAMES: dict[Any, str] = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    Path: "path",
    Path | None: "path or empty",
    tuple[str, ...] | None: "list of strings or absent",
}


def schema() -> Iterator[KeySpec]:
    """Every key with its type, default and comment, in file order (for documentation and tests)."""
    for section_name, section_type in _section_types().items():
        hints = _field_types(section_type)
        for f in fields(section_type):
            yield KeySpec(section_name, f.name, _TYPE_NAMES[hints[f.name]], _default_of(f), f.metadata.get("doc", ""))


def default_pins() -> dict[str, int]:
    """The default BCM pin of every wiring key, e.g. {"button.pin": 16, "leds.green_pin": 5, ...}."""
    return {spec.dotted: spec.default for spec in schema() if spec.name.endswith("pin") and spec.type_name == "integer"}


# ---------------------------------------------------------------- TOML output


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


# ---------------------------------------------------------------- the validator


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
            if not math.isfinite(value):
                return None, f"must be a finite number, got {_show(value)}"
            return float(value), None
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


def simulated_data_dir() -> Path:
    """Where a simulation keeps its data: $XDG_DATA_HOME/leaf-appliance, else ~/.local/share/leaf-appliance."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "leaf-appliance"


def _simulated(config: Config, raw: dict[str, Any]) -> Config:
    device = config.device
    raw_device = raw.get("device")
    if not (isinstance(raw_device, dict) and "data_dir" in raw_device):
        device = replace(device, data_dir=simulated_data_dir())
    return replace(
        config,
        device=device,
        camera=replace(config.camera, kind="simulated"),
        button=replace(config.button, kind="simulated"),
        leds=replace(config.leds, kind="simulated"),
        display=replace(config.display, kind="simulated"),
        # Beside the data folder, not in it: the exporter refuses to write into its own data.
        export=replace(
            config.export, folder=config.export.folder or device.data_dir.with_name(device.data_dir.name + "-usb-stick")
        ),
    )


_POSITION = re.compile(r"^(?P<msg>.*?) \(at (?:line (?P<line>\d+), column (?P<col>\d+)|(?P<end>end of document))\)$")


def _syntax_problem(error: tomllib.TOMLDecodeError) -> str:
    match = _POSITION.match(str(error))
    if not match:
        return f"TOML syntax error: {error}"
    if match["end"]:
        return f"TOML syntax error at the end of the file: {match['msg']}"
    return f"TOML syntax error at line {match['line']}, column {match['col']}: {match['msg']}"


def _read(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The parsed file, or the reason it cannot be read."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle), None
    except FileNotFoundError:
        return None, "file not found (give the path of an existing file, or no path to use the defaults)"
    except IsADirectoryError:
        return None, "is a directory, not a config file"
    except PermissionError:
        return None, "permission denied (run as a user who may read it, or fix its permissions)"
    except UnicodeDecodeError as error:
        return None, f"is not UTF-8 text (bad byte at offset {error.start})"
    except tomllib.TOMLDecodeError as error:
        return None, _syntax_problem(error)
    except OSError as error:
        return None, f"cannot be read: {error.strerror or error}"


def _load(path: Path | str | None, simulate: bool) -> tuple[Config | None, list[str]]:
    if path is None and not DEFAULT_CONFIG_PATH.exists():
        source, raw = "(built-in defaults)", {}
    else:
        path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
        source = str(path)
        raw, reason = _read(path)
        if raw is None:
            return None, [f"{source}: {reason}"]
    problems = _Problems()
    config = _parse(raw, problems)
    _check_consistency(config, problems)
    if simulate:
        config = _simulated(config, raw)
    _check_effective(config, problems)
    if problems.items:
        return None, problems.lines(source)
    return config, []


def load_config(path: Path | str | None = None, *, simulate: bool = False) -> Config:
    """The configuration to run with; raises ConfigError listing every problem, one per line.

    ``path=None`` reads DEFAULT_CONFIG_PATH when it exists and uses the defaults otherwise; an explicit
    path must exist. ``simulate`` swaps every hardware kind for its simulation and, unless the file sets
    device.data_dir, keeps data under the user's XDG data directory.
    """
    config, problems = _load(path, simulate)
    if config is None:
        raise ConfigError("\n".join(problems))
    return config


def config_check(path: Path | str | None = None, *, simulate: bool = False) -> list[str]:
    """Every problem in a config file as "file: key: reason" lines, empty when it is fine (`appliance config check`)."""
    return _load(path, simulate)[1]


__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_DATA_DIR",
    "SIMULATED_DISPLAY_SIZE",
    "ButtonConfig",
    "CameraConfig",
    "Config",
    "DaemonConfig",
    "DeviceConfig",
    "DiagnosisConfig",
    "DisplayConfig",
    "ExportConfig",
    "KeySpec",
    "LedsConfig",
    "ModelConfig",
    "QualityConfig",
    "StorageConfig",
    "SyncConfig",
    "config_check",
    "default_pins",
    "load_config",
    "schema",
    "simulated_data_dir",
]
