"""From a photo to a Diagnosis: quality gate, classifier, calibrated confidence, refusal.

Three verdicts: a *diagnosis* (crop and condition), a *retake* (the photo is unusable) and
*unknown* (the photo is fine, the answer is not in the model: another plant, or a condition
of a known crop the model was not taught). With ``crops`` set, the choice is made among those
crops' classes only (plus "no leaf" and "other plant"), probabilities renormalised over them,
unless the model is sure the leaf is of a crop left out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from leaf_wire import reasons

from . import labels
from .errors import ConfigError
from .ports import Classifier, ModelInfo
from .probabilities import softmax
from .result import Diagnosis, Quality, Ranked, RetakeReason, Timings, UnknownReason, Verdict
from .vision import quality
from .vision.decode import read_image
from .vision.preprocess import model_view, to_tensor


def resolve_crops(crops: tuple[str, ...] | list[str] | None, classes: tuple[str, ...]) -> tuple[str, ...]:
    """The configured crops checked against the model's classes; () means every crop it knows.

    Raises ConfigError naming the crops the model knows for an unknown crop, an empty list,
    or a crop whose healthy class the model lacks (without it every healthy leaf of that
    crop would be forced into a disease).
    """
    if crops is None:
        return ()
    known = labels.crops_of(classes)
    wanted = labels.crop_keys(crops)
    if not wanted:
        raise ConfigError(
            f"diagnosis.crops: the list is empty; name at least one of {', '.join(known)}, "
            "or leave the key out to choose among every crop the model knows"
        )
    unknown = [c for c in wanted if c not in known]
    if unknown:
        raise ConfigError(
            f"diagnosis.crops: {', '.join(repr(c) for c in unknown)} not a crop this model knows; "
            f"it knows {', '.join(known)}"
        )
    missing = [f"{c}__healthy" for c in wanted if f"{c}__healthy" not in classes]
    if missing:
        raise ConfigError(
            f"diagnosis.crops: the model has no class {', '.join(missing)}, which the crop needs; "
            "use a model trained with that crop's healthy leaves"
        )
    return wanted


def crop_mask(classes: tuple[str, ...], crops: tuple[str, ...]) -> np.ndarray:
    """Which outputs take part: the chosen crops' classes, no-leaf and other plants (all when crops is empty)."""
    if not crops:
        return np.ones(len(classes), dtype=bool)
    return np.array([not labels.is_crop_class(c) or labels.crop_of(c) in crops for c in classes])


def restrict(probs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Probabilities renormalised over the outputs in ``mask`` (last axis)."""
    p = np.where(mask, probs, 0.0)
    return p / np.clip(p.sum(axis=-1, keepdims=True), 1e-12, None)


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: RetakeReason | UnknownReason | None
    top: tuple[Ranked, ...]
    crop: str = ""  # the crop key an unknown-condition answer is about


def decide(
    q: Quality,
    probs: np.ndarray,
    classes: tuple[str, ...],
    refuse_below: float,
    thresholds: quality.QualityThresholds,
    top_k: int = 3,
    mask: np.ndarray | None = None,
) -> Decision:
    """The one refusal rule, over calibrated probabilities of every class.

    ``mask`` (crop_mask): the configured crops' classes and the refusal classes. The choice is
    made among those, renormalised; but when the model is sure the leaf belongs to a crop left
    out (their mass reaches the threshold) the answer is "not a crop this appliance knows", so a
    pepper leaf shown to an apple appliance is never named an apple disease.
    Order: photo quality, a left-out crop, no leaf, other plant, a confident condition, a
    confident crop (unknown condition), else not sure.
    """
    outside = 0.0
    if mask is not None and not mask.all():
        outside = float(probs[~mask].sum())
        probs = restrict(probs, mask)
    order = np.argsort(-probs)[:top_k]
    top = tuple(Ranked(classes[i], round(float(probs[i]), 6)) for i in order)
    problem = quality.problem(q, thresholds)
    if problem is not None:
        return Decision(Verdict.RETAKE, problem, top)
    best = top[0].slug
    if outside >= refuse_below:  # sure it is a leaf, of a crop left out
        return Decision(Verdict.UNKNOWN, UnknownReason.OTHER_PLANT, top)
    if labels.is_no_leaf_class(best):
        return Decision(Verdict.RETAKE, RetakeReason.NO_LEAF, top)
    if labels.is_other_plant_class(best):
        return Decision(Verdict.UNKNOWN, UnknownReason.OTHER_PLANT, top)
    if float(probs[order[0]]) >= refuse_below:
        return Decision(Verdict.DIAGNOSIS, None, top)
    mass: dict[str, float] = {}
    for slug, p in zip(classes, probs, strict=True):
        if labels.is_crop_class(slug):
            mass[labels.crop_of(slug)] = mass.get(labels.crop_of(slug), 0.0) + float(p)
    crop = max(mass, key=mass.__getitem__) if mass else ""
    if crop and mass[crop] >= refuse_below:
        return Decision(Verdict.UNKNOWN, UnknownReason.UNKNOWN_CONDITION, top, crop)
    return Decision(Verdict.RETAKE, RetakeReason.NOT_SURE, top)


class Diagnoser:
    """Decides diagnosis, retake or unknown; pure logic over a Classifier, so it runs anywhere."""

    def __init__(
        self,
        classifier: Classifier,
        info: ModelInfo,
        thresholds: quality.QualityThresholds | None = None,
        refuse_below: float | None = None,
        language: str = labels.DEFAULT_LANGUAGE,
        top_k: int = 3,
        crops: tuple[str, ...] | list[str] | None = None,
    ) -> None:
        self.classifier = classifier
        self.info = info
        self.thresholds = thresholds or quality.QualityThresholds()
        self.refuse_below = refuse_below if refuse_below else info.refuse_below
        self.language = language
        self.top_k = max(1, min(top_k, len(info.classes)))
        self.crops = resolve_crops(crops, info.classes)
        self._mask = crop_mask(info.classes, self.crops)

    def probabilities(self, tensor: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of every class (decide restricts them to the configured crops)."""
        return softmax(self.classifier.logits(tensor)[0], self.info.temperature)

    def decide(self, q: Quality, probs: np.ndarray) -> Decision:
        return decide(q, probs, self.info.classes, self.refuse_below, self.thresholds, self.top_k, self._mask)

    def diagnose(self, bgr: np.ndarray, decode_ms: float = 0.0) -> Diagnosis:
        t0 = time.perf_counter()
        view = model_view(bgr, self.info.spec.size)
        q = quality.measure(view)
        t1 = time.perf_counter()
        probs = self.probabilities(to_tensor(view, self.info.spec))
        t2 = time.perf_counter()
        d = self.decide(q, probs)
        if d.verdict is Verdict.DIAGNOSIS:
            words = labels.label(d.top[0].slug, self.language)
        elif d.verdict is Verdict.RETAKE:
            what, hint = reasons.retake_words(d.reason.value if d.reason else "", self.language)
            words = labels.Label(crop="", condition=what, advice=hint, healthy=False)
        else:
            what, hint = reasons.unknown_words(d.reason.value if d.reason else "", self.language)
            crop = labels.crop_name(d.crop, self.language) if d.crop else ""
            words = labels.Label(crop=crop, condition=what, advice=hint, healthy=False)
        timings = Timings(
            decode_ms=round(decode_ms, 3),
            quality_ms=round((t1 - t0) * 1e3, 3),
            inference_ms=round((t2 - t1) * 1e3, 3),
            total_ms=round(decode_ms + (time.perf_counter() - t0) * 1e3, 3),
        )
        return Diagnosis(
            verdict=d.verdict,
            reason=d.reason,
            top=d.top,
            quality=q,
            timings=timings,
            model_version=self.info.version,
            model_sha256=self.info.sha256,
            crop=words.crop,
            condition=words.condition,
            advice=words.advice,
            healthy=words.healthy,
            crops=self.crops,
        )

    def diagnose_file(self, path: str | Path) -> Diagnosis:
        t0 = time.perf_counter()
        bgr = read_image(path)
        return self.diagnose(bgr, decode_ms=(time.perf_counter() - t0) * 1e3)
