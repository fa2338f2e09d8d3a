"""The words for the reasons a record carries beside its verdict.

The device's screens and exports and the collector's page say the same thing about a record,
so the words live with the protocol rather than with either side. English only for now.
"""

from __future__ import annotations

RETAKE_WORDS = {
    "no_leaf": ("No leaf in view", "Hold one leaf flat in front of the camera, filling most of the picture."),
    "blurred": ("Photo too blurred", "Hold the leaf and the appliance still, about a hand's width from the lens."),
    "too_dark": ("Photo too dark", "Move into daylight or turn so the light falls on the leaf."),
    "too_bright": ("Photo too bright", "Shade the leaf from direct sun, or turn away from the glare."),
    "not_sure": ("Not sure what this is", "Try another leaf with clear symptoms, or ask your field adviser."),
}


UNKNOWN_WORDS = {
    "other_plant": (
        "I don't know this plant",
        "It is not a crop this appliance knows. Show the plant to your field adviser.",
    ),
    "unknown_condition": (
        "Not a condition this model knows",
        "Show this leaf to your field adviser.",
    ),
}


def unknown_words(reason: str) -> tuple[str, str]:
    """(what the appliance cannot tell, what to do instead) for an "I don't know this" reason."""
    return UNKNOWN_WORDS.get(reason, ("I don't know this", "Show the leaf to your field adviser."))


def retake_words(reason: str) -> tuple[str, str]:
    """(what went wrong, how to take a better photo) for a retake reason."""
    return RETAKE_WORDS.get(reason, ("Please retake the photo", "Hold one leaf steady in good light."))
