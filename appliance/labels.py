"""The words shown to people for each class, from one data file that translations extend."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

DEFAULT_LANGUAGE = "en"
BACKGROUND_PREFIX = "background__"  # no leaf in view: a retake
OTHER_PLANT_PREFIX = "other__"  # a plant the appliance does not support: "I don't know this"


@dataclass(frozen=True)
class Label:
    crop: str
    condition: str
    advice: str
    healthy: bool
    short_advice: str = ""  # one sentence for small panels where ``advice`` does not fit readably


def is_crop_class(slug: str) -> bool:
    """A class that names a crop and condition ("apple__healthy"), not no-leaf or other plants."""
    return not slug.startswith((BACKGROUND_PREFIX, OTHER_PLANT_PREFIX))


def is_no_leaf_class(slug: str) -> bool:
    return slug.startswith(BACKGROUND_PREFIX)


def is_other_plant_class(slug: str) -> bool:
    return slug.startswith(OTHER_PLANT_PREFIX)


def crop_of(slug: str) -> str:
    """The crop key of a crop class ("apple" for "apple__healthy"); "" for no-leaf and other plants."""
    return slug.partition("__")[0] if is_crop_class(slug) else ""


def crop_keys(names) -> tuple[str, ...]:
    """Crop names as the config, the records and the diagnosis keep them: lower case, once each, sorted."""
    return tuple(sorted(dict.fromkeys(str(n).strip().lower() for n in names)))


def crops_of(classes: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The crops a model knows, sorted, from its class slugs."""
    return tuple(sorted({crop_of(c) for c in classes if is_crop_class(c)}))


def crop_name(crop: str, language: str = DEFAULT_LANGUAGE) -> str:
    """The display name of a crop key, from the first labelled class of that crop."""
    for slug in known_slugs():
        if crop_of(slug) == crop:
            return label(slug, language).crop
    return crop.replace("_", " ").capitalize()


@cache
def _table() -> dict[str, dict[str, dict[str, object]]]:
    return tomllib.loads(resources.files("appliance").joinpath("data/labels.toml").read_text(encoding="utf-8"))


def _from_slug(slug: str) -> Label:
    """Readable words for a class the labels file does not know yet."""
    crop, _, condition = slug.partition("__")
    words = condition.replace("_", " ")
    return Label(
        crop=crop.replace("_", " ").capitalize(),
        condition=words.capitalize(),
        advice="Ask your field adviser about this condition.",
        healthy=condition == "healthy",
    )


def label(slug: str, language: str = DEFAULT_LANGUAGE) -> Label:
    entry = _table().get(slug)
    if entry is None:
        return _from_slug(slug)
    base = entry.get(DEFAULT_LANGUAGE, {})
    # English, then the base language ("fr"), then the regional variant ("fr-CA") wins.
    words = {**base, **entry.get(language.split("-")[0], {}), **entry.get(language, {})}
    return Label(
        crop=str(words.get("crop", "")),
        condition=str(words.get("condition", "")),
        advice=str(words.get("advice", "")),
        healthy=bool(base.get("healthy", False)),
        short_advice=str(words.get("short_advice", "")),
    )


def short_advice(slug: str, advice: str) -> str:
    """The short advice in the same language as ``advice`` (a screen only has the diagnosis's words); "" if none."""
    for language in _table().get(slug, {}):
        words = label(slug, language)
        if words.advice == advice:
            return words.short_advice
    return ""


def known_slugs() -> list[str]:
    return sorted(_table())


def known_languages() -> tuple[str, ...]:
    """Languages every class has words in (appliance.words.known_languages adds the screens' and reasons')."""
    table = _table()
    shared = set.intersection(*(set(entry) for entry in table.values())) if table else {DEFAULT_LANGUAGE}
    return tuple(sorted(shared | {DEFAULT_LANGUAGE}))
