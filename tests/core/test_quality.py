"""The quality gate on photos made to fail it, and on real leaves that must pass it."""

from __future__ import annotations

import cv2
import numpy as np

from appliance.result import RetakeReason
from appliance.samples import sample_paths
from appliance.vision.decode import read_image
from appliance.vision.preprocess import model_view
from appliance.vision.quality import QualityThresholds, measure, problem

T = QualityThresholds()


def _leaf_view():
    return model_view(read_image(sample_paths()[0]), 224)


def test_a_real_leaf_photo_passes():
    assert problem(measure(_leaf_view()), T) is None


def test_dark_photo():
    dark = (_leaf_view() * 0.08).astype(np.uint8)
    assert problem(measure(dark), T) is RetakeReason.TOO_DARK


def test_overexposed_photo():
    bright = np.clip(_leaf_view().astype(np.int32) + 200, 0, 255).astype(np.uint8)
    assert problem(measure(bright), T) is RetakeReason.TOO_BRIGHT


def test_blurred_photo():
    blurred = cv2.GaussianBlur(_leaf_view(), (0, 0), 6)
    q = measure(blurred)
    assert q.sharpness < T.min_sharpness
    assert problem(q, T) is RetakeReason.BLURRED


def test_no_plant_colours():
    rng = np.random.default_rng(1)
    grey = rng.integers(60, 200, (224, 224, 1), dtype=np.uint8).repeat(3, axis=2)  # sharp, well lit, colourless
    q = measure(grey)
    assert q.plant_fraction < 0.01
    assert problem(q, T) is RetakeReason.NO_LEAF
