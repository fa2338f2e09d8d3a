"""The schema: one frozen dataclass per section, each field with its default, its words and its check.

The pin and display defaults live only here; documentation reads them through `schema()`."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field, fields
from pathlib import Path

from appliance import labels
from appliance.config.checks import (
    _about,
    _at_least,
    _bcm_pin,
    _between,
    _known_language,
    _matches,
    _one_of,
    _show,
    _url_shape,
    _zero_or_between,
)
from appliance.config.toml_out import _toml_line

DEFAULT_DATA_DIR = Path("/var/lib/leaf-appliance")
SIMULATED_DISPLAY_SIZE = (480, 320)  # what a simulated display uses when width/height are 0
UNIX_SOCKET_PATH_MAX = 107  # bytes, Linux sun_path less the terminating NUL


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
            'the screens\' language: en, fr, es, pt, sw or hi ("pt-BR" uses pt); all but en not yet reviewed',
            _known_language,
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
    simulated_size: str = field(
        default="",
        metadata=_about(
            'simulated kind: frames of WxH pixels, as a real camera gives, e.g. "2304x1296"; "" = as they are',
            _matches(
                r"(?:[1-9][0-9]{1,3})x(?:[1-9][0-9]{1,3})",
                "WIDTHxHEIGHT in pixels, e.g. 2304x1296",
                allow_empty="the photos as they are",
            ),
        ),
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
            "none | thumbnail (small JPEG) | full (the photo, and a thumbnail; full_photos' picks go on their own)",
            _one_of("none", "thumbnail", "full"),
        ),
    )
    timeout_s: float = field(
        default=20.0, metadata=_about("give up on one request after this many seconds, 1-300", _between(1, 300))
    )
    # Issue 13: the full photos base wants to teach the model; the rule is appliance/sync/photo_policy.py.
    full_photos: str = field(
        default="teaching",
        metadata=_about(
            "teaching (hard cases and a sample) | all | none: full photos sent one by one after the records",
            _one_of("teaching", "all", "none"),
        ),
    )
    full_photo_below: float = field(
        default=0.80,
        metadata=_about("teaching: a diagnosis below this confidence is a hard case, 0-1", _between(0, 1)),
    )
    full_photo_sample: float = field(
        default=0.05,
        metadata=_about("teaching: share of the other records whose photo is sent too, 0-1", _between(0, 1)),
    )
    full_photo_mb_per_day: int = field(
        default=100,
        metadata=_about("full photos sent per UTC day, in MB; 0 = no limit", _at_least(0)),
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


def _listen_address(value: str) -> str | None:
    """HOST:PORT with a numeric IPv4 host (no name lookups at start-up); port 0 = any free port (tests)."""
    match = re.fullmatch(r"(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})", value)
    if match and all(int(n) <= 255 for n in match[1].split(".")) and int(match[2]) <= 65535:
        return None
    return f'must be IPv4-ADDRESS:PORT like "127.0.0.1:8321" (0.0.0.0 = every network), got {_show(value)}'


@dataclass(frozen=True)
class WebConfig:
    enabled: bool = field(
        default=False,
        metadata=_about("true: serve the live screen, LEDs, button and history as a web page (--simulate: true)"),
    )
    listen: str = field(
        default="127.0.0.1:8321",
        metadata=_about('where the page listens; "0.0.0.0:8321" lets a phone on this network see it', _listen_address),
    )
    pin: str = field(
        default="",
        metadata=_about(
            '"" = other machines only watch; else 4-12 digits they type to press the button',
            _matches(r"[0-9]{4,12}", "4-12 digits", allow_empty="read-only from other machines"),
        ),
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
    web: WebConfig = field(default_factory=WebConfig)

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
