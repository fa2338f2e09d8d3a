"""The words shown to people for each class, from one data file that translations extend."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

DEFAULT_LANGUAGE = "en"
BACKGROUND_PREFIX = "background__"


@dataclass(frozen=True)
class Label:
    crop: str
    condition: str
    advice: str
    healthy: bool


def is_leaf_class(slug: str) -> bool:
    return not slug.startswith(BACKGROUND_PREFIX)


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
    )


def known_slugs() -> list[str]:
    return sorted(_table())


RETAKE_WORDS = {
    "no_leaf": ("No leaf in view", "Hold one leaf flat in front of the camera, filling most of the picture."),
    "blurred": ("Photo too blurred", "Hold the leaf and the appliance still, about a hand's width from the lens."),
    "too_dark": ("Photo too dark", "Move into daylight or turn so the light falls on the leaf."),
    "too_bright": ("Photo too bright", "Shade the leaf from direct sun, or turn away from the glare."),
    "not_sure": ("Not sure what this is", "Try another leaf with clear symptoms, or ask your field adviser."),
}


def retake_words(reason: str) -> tuple[str, str]:
    """(what went wrong, how to take a better photo) for a retake reason."""
    return RETAKE_WORDS.get(reason, ("Please retake the photo", "Hold one leaf steady in good light."))
