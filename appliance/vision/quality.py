"""Cheap measures of whether a photo is usable: exposure, sharpness, leaf-like colour."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..result import Quality, RetakeReason


@dataclass(frozen=True)
class QualityThresholds:
    min_brightness: float = 40.0
    max_brightness: float = 225.0
    min_sharpness: float = 25.0
    min_plant_fraction: float = 0.04
    max_dark_fraction: float = 0.75
    max_bright_fraction: float = 0.6


def measure(rgb_view: np.ndarray) -> Quality:
    """Measures on the model's own view of the photo (what the classifier will judge)."""
    grey = cv2.cvtColor(rgb_view, cv2.COLOR_RGB2GRAY)
    hsv = cv2.cvtColor(rgb_view, cv2.COLOR_RGB2HSV)
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    # Brown through yellow to green (OpenCV hue is degrees / 2), with some colour and light.
    plant = (hue >= 8) & (hue <= 90) & (sat >= 40) & (val >= 35)
    return Quality(
        brightness=float(grey.mean()),
        dark_fraction=float((grey < 20).mean()),
        bright_fraction=float((grey > 250).mean()),
        sharpness=float(cv2.Laplacian(grey, cv2.CV_64F).var()),
        plant_fraction=float(plant.mean()),
    )


def problem(q: Quality, t: QualityThresholds) -> RetakeReason | None:
    """The first reason this photo cannot be judged, before looking at the model's answer."""
    if q.brightness < t.min_brightness or q.dark_fraction > t.max_dark_fraction:
        return RetakeReason.TOO_DARK
    if q.brightness > t.max_brightness or q.bright_fraction > t.max_bright_fraction:
        return RetakeReason.TOO_BRIGHT
    if q.sharpness < t.min_sharpness:
        return RetakeReason.BLURRED
    if q.plant_fraction < t.min_plant_fraction:
        return RetakeReason.NO_LEAF
    return None
