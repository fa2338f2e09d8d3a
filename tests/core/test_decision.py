"""The one refusal rule (appliance.diagnosis.decide) and the crop restriction, as pure logic."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.diagnosis import crop_mask, decide, resolve_crops, restrict
from appliance.errors import ConfigError
from appliance.result import Quality, RetakeReason, UnknownReason, Verdict
from appliance.vision.quality import QualityThresholds
from models.pipeline.calibrate import expected_calibration_error

CLASSES = (
    "apple__cedar_apple_rust",
    "apple__gray_spot",
    "apple__healthy",
    "background__no_leaf",
    "grape__healthy",
    "other__plant",
    "tomato__early_blight",
    "tomato__healthy",
)
GOOD = Quality(brightness=120, dark_fraction=0.0, bright_fraction=0.0, sharpness=500.0, plant_fraction=0.6)


def probs(**p: float) -> np.ndarray:
    out = np.array([p.get(c.replace("__", "_"), 0.0) for c in CLASSES], dtype=np.float64)
    rest = 1.0 - out.sum()
    return out + rest / len(CLASSES)


def verdict(p: np.ndarray, crops: tuple[str, ...] = ()):
    return decide(GOOD, p, CLASSES, refuse_below=0.6, thresholds=QualityThresholds(), mask=crop_mask(CLASSES, crops))


def test_confident_condition_is_a_diagnosis():
    d = verdict(probs(apple_healthy=0.9))
    assert d.verdict is Verdict.DIAGNOSIS and d.top[0].slug == "apple__healthy" and d.reason is None


def test_no_leaf_is_a_retake_and_other_plants_are_unknown():
    assert verdict(probs(background_no_leaf=0.5)).reason is RetakeReason.NO_LEAF
    d = verdict(probs(other_plant=0.5))
    assert d.verdict is Verdict.UNKNOWN and d.reason is UnknownReason.OTHER_PLANT


def test_a_sure_crop_with_an_unsure_condition_is_unknown_condition_of_that_crop():
    d = verdict(probs(apple_cedar_apple_rust=0.4, apple_gray_spot=0.4))
    assert d.verdict is Verdict.UNKNOWN and d.reason is UnknownReason.UNKNOWN_CONDITION and d.crop == "apple"


def test_neither_crop_nor_condition_sure_is_not_sure():
    d = verdict(probs(apple_healthy=0.3, grape_healthy=0.3, tomato_healthy=0.3))
    assert d.verdict is Verdict.RETAKE and d.reason is RetakeReason.NOT_SURE


def test_a_bad_photo_is_a_retake_whatever_the_model_says():
    dark = Quality(brightness=5, dark_fraction=0.95, bright_fraction=0.0, sharpness=500.0, plant_fraction=0.6)
    p = restrict(probs(apple_healthy=0.95), crop_mask(CLASSES, ()))
    assert decide(dark, p, CLASSES, 0.6, QualityThresholds()).reason is RetakeReason.TOO_DARK


def test_crop_restriction_renormalises_over_that_crop_and_the_refusal_classes():
    p = probs(grape_healthy=0.5, apple_healthy=0.3)
    mask = crop_mask(CLASSES, ("apple",))
    r = restrict(p, mask)
    assert r.sum() == pytest.approx(1.0)
    assert all(r[i] == 0 for i, c in enumerate(CLASSES) if c.startswith(("grape", "tomato")))
    assert r[CLASSES.index("background__no_leaf")] > 0 and r[CLASSES.index("other__plant")] > 0
    assert verdict(p).top[0].slug == "grape__healthy"
    assert verdict(p, ("apple",)).top[0].slug == "apple__healthy"


def test_a_leaf_the_model_is_sure_is_of_a_left_out_crop_is_not_named_as_a_chosen_one():
    d = verdict(probs(tomato_early_blight=0.9, apple_gray_spot=0.06), ("apple",))
    assert d.verdict is Verdict.UNKNOWN and d.reason is UnknownReason.OTHER_PLANT
    assert verdict(probs(tomato_early_blight=0.9, apple_gray_spot=0.06)).top[0].slug == "tomato__early_blight"


def test_renormalised_probabilities_stay_calibrated():
    """Labels drawn from calibrated probabilities, kept when in the crop: the renormalised ones match them."""
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 2.5, (40000, len(CLASSES)))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(len(CLASSES), p=row) for row in p])
    mask = crop_mask(CLASSES, ("apple",))
    keep = mask[labels]
    r = restrict(p[keep], mask)
    assert expected_calibration_error(r, labels[keep]) < 0.02


def test_crop_names_are_checked_against_the_model():
    assert resolve_crops(None, CLASSES) == ()
    assert resolve_crops(["Tomato ", "apple", "apple"], CLASSES) == ("apple", "tomato")
    with pytest.raises(ConfigError, match=r"'banana' not a crop this model knows; it knows apple, grape, tomato"):
        resolve_crops(["banana"], CLASSES)
    with pytest.raises(ConfigError, match="empty"):
        resolve_crops([], CLASSES)
    with pytest.raises(ConfigError, match="no class grape__healthy"):
        resolve_crops(["grape"], (*tuple(c for c in CLASSES if c != "grape__healthy"), "grape__black_rot"))
