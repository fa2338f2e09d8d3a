"""The display's own words in each language (data/messages.toml), and which languages are complete.

A class's words are in labels.py and a reason's in leaf_wire.reasons; this module owns the rest
(titles, next actions, progress, faults) and the rule that a language is offered only when all
three sources have it, so one screen never mixes two languages.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from string import Formatter

from appliance import labels
from leaf_wire import reasons

ENGLISH = labels.DEFAULT_LANGUAGE


def _flatten(table: dict[str, object], prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@cache
def catalog() -> dict[str, dict[str, object]]:
    """{language: {"ready.title": "Ready", ...}}, as messages.toml has it."""
    raw = tomllib.loads(resources.files("appliance").joinpath("data/messages.toml").read_text(encoding="utf-8"))
    return {language: _flatten(table) for language, table in raw.items()}


def placeholders(text: str) -> set[str]:
    """The {names} a message is filled in with."""
    return {name for _, name, _, _ in Formatter().parse(text) if name}


def say(key: str, language: str = ENGLISH, **fields: object) -> str:
    """The message ``key`` in ``language`` (its base language, then English, when it has none)."""
    table = catalog()
    for lang in (language, language.split("-")[0], ENGLISH):
        text = table.get(lang, {}).get(key)
        if isinstance(text, str):
            return text.format(**fields) if fields else text
    raise KeyError(f"messages.toml has no {key!r}")


def crops_line(names: tuple[str, ...], language: str = ENGLISH) -> str:
    """What the ready screen and `diagnose` say about the crops chosen among: "Crops: Apple, Grape"."""
    return say("ready.crops", language, names=", ".join(names)) if names else say("ready.all_crops", language)


def language_name(language: str) -> str:
    name = catalog().get(language.split("-")[0], {}).get("language.name")
    return name if isinstance(name, str) else language


def reviewed(language: str) -> bool:
    """Whether someone who knows the field has read the translation (English is the source)."""
    return bool(catalog().get(language.split("-")[0], {}).get("language.reviewed", False))


@cache
def known_languages() -> tuple[str, ...]:
    """Languages the classes, the reasons and the screens all have words in."""
    complete = set(labels.known_languages()) & set(reasons.languages()) & set(catalog())
    return tuple(sorted(complete | {ENGLISH}))
