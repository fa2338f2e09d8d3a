"""Reading the file: TOML syntax errors with their position, the simulation overlay, load_config."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from appliance.config.schema import Config
from appliance.config.validator import _check_consistency, _check_effective, _parse, _Problems
from appliance.errors import ConfigError
from appliance.files import FileRefused, read_regular_file

DEFAULT_CONFIG_PATH = Path("/etc/leaf-appliance/config.toml")
MAX_LINE_CHARS = 4_000  # the longest real line (a crops list) is well under 200
MAX_CONFIG_BYTES = 1_000_000  # a real config is a few kB; a FIFO or /dev/zero must not hang or fill memory


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
    raw_web = raw.get("web")
    web = config.web
    if not (isinstance(raw_web, dict) and "enabled" in raw_web):
        web = replace(web, enabled=True)  # the simulation shows its page unless the file says otherwise
    return replace(
        config,
        device=device,
        web=web,
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
        # utf-8-sig: a byte-order mark (Windows Notepad writes one) is not a syntax error at line 1
        text = read_regular_file(path, MAX_CONFIG_BYTES).decode("utf-8-sig")
        for number, line in enumerate(text.splitlines(), 1):
            if len(line) > MAX_LINE_CHARS:  # a key dotted 20,000 levels deep took 1.6 GB to parse
                return None, f"line {number} is {len(line):,} characters; a config line has at most {MAX_LINE_CHARS:,}"
        return tomllib.loads(text), None
    except RecursionError:
        return None, "is nested too deeply (arrays or tables inside one another); a config needs two levels"
    except FileRefused as error:
        return None, str(error)
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
