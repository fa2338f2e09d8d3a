"""The schema as data, for documentation, the Ansible role's checks and `appliance config`."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from dataclasses import MISSING, Field, fields
from pathlib import Path
from typing import Any, NamedTuple

from appliance.config.schema import Config


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
