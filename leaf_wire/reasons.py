"""The words for the reasons a record carries beside its verdict, in each language (reasons.toml).

The device's screens and exports and the collector's page say the same thing about a record,
so the words live with the protocol rather than with either side.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources

ENGLISH = "en"
FALLBACK = "fallback"  # the words for a reason code this version does not know


@cache
def _table() -> dict[str, dict[str, dict[str, dict[str, str]]]]:
    return tomllib.loads(resources.files("leaf_wire").joinpath("reasons.toml").read_text(encoding="utf-8"))


def languages() -> tuple[str, ...]:
    return tuple(sorted(_table()))


def _words(verdict: str, reason: str, language: str) -> tuple[str, str]:
    table = _table()
    for lang in (language, language.split("-")[0], ENGLISH):
        kinds = table.get(lang, {}).get(verdict, {})
        words = kinds.get(reason) or kinds.get(FALLBACK)
        if words:
            return words["what"], words["hint"]
    raise KeyError(f"no words for {verdict} reason {reason!r}")  # reasons.toml lost its English fallback


def retake_words(reason: str, language: str = ENGLISH) -> tuple[str, str]:
    """(what went wrong, how to take a better photo) for a retake reason."""
    return _words("retake", reason, language)


def unknown_words(reason: str, language: str = ENGLISH) -> tuple[str, str]:
    """(what the appliance cannot tell, what to do instead) for an "I don't know this" reason."""
    return _words("unknown", reason, language)


def reason_codes(verdict: str) -> tuple[str, ...]:
    """The reason codes English has words for (without the fallback)."""
    return tuple(r for r in _table()[ENGLISH][verdict] if r != FALLBACK)
