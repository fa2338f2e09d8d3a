"""From a photo to a Diagnosis: quality gate, classifier, calibrated confidence, refusal."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from . import labels
from .classifier import ModelInfo, softmax
from .ports import Classifier
from .result import Diagnosis, Quality, Ranked, RetakeReason, Timings, Verdict
from .vision import quality
from .vision.preprocess import model_view, read_image, to_tensor


class Diagnoser:
    """Decides diagnosis or retake; pure logic over a Classifier, so it runs anywhere."""

    def __init__(
        self,
        classifier: Classifier,
        info: ModelInfo,
        thresholds: quality.QualityThresholds | None = None,
        refuse_below: float | None = None,
        language: str = labels.DEFAULT_LANGUAGE,
        top_k: int = 3,
    ) -> None:
        self.classifier = classifier
        self.info = info
        self.thresholds = thresholds or quality.QualityThresholds()
        self.refuse_below = refuse_below if refuse_below else info.refuse_below
        self.language = language
        self.top_k = max(1, min(top_k, len(info.classes)))

    def probabilities(self, tensor: np.ndarray) -> np.ndarray:
        return softmax(self.classifier.logits(tensor)[0], self.info.temperature)

    def decide(self, q: Quality, probs: np.ndarray) -> tuple[RetakeReason | None, tuple[Ranked, ...]]:
        """The verdict from the quality measures and calibrated probabilities."""
        order = np.argsort(-probs)[: self.top_k]
        top = tuple(Ranked(self.info.classes[i], round(float(probs[i]), 6)) for i in order)
        reason = quality.problem(q, self.thresholds)
        if reason is None and not labels.is_leaf_class(top[0].slug):
            reason = RetakeReason.NO_LEAF
        if reason is None and top[0].probability < self.refuse_below:
            reason = RetakeReason.NOT_SURE
        return reason, top

    def diagnose(self, bgr: np.ndarray, decode_ms: float = 0.0) -> Diagnosis:
        t0 = time.perf_counter()
        view = model_view(bgr, self.info.spec.size)
        q = quality.measure(view)
        t1 = time.perf_counter()
        probs = self.probabilities(to_tensor(view, self.info.spec))
        t2 = time.perf_counter()
        reason, top = self.decide(q, probs)
        words = labels.label(top[0].slug, self.language)
        if reason is not None:
            what, hint = labels.retake_words(reason.value)
            words = labels.Label(crop="", condition=what, advice=hint, healthy=False)
        timings = Timings(
            decode_ms=round(decode_ms, 3),
            quality_ms=round((t1 - t0) * 1e3, 3),
            inference_ms=round((t2 - t1) * 1e3, 3),
            total_ms=round(decode_ms + (time.perf_counter() - t0) * 1e3, 3),
        )
        return Diagnosis(
            verdict=Verdict.RETAKE if reason else Verdict.DIAGNOSIS,
            reason=reason,
            top=top,
            quality=q,
            timings=timings,
            model_version=self.info.version,
            model_sha256=self.info.sha256,
            crop=words.crop,
            condition=words.condition,
            advice=words.advice,
            healthy=words.healthy,
        )

    def diagnose_file(self, path: str | Path) -> Diagnosis:
        t0 = time.perf_counter()
        bgr = read_image(path)
        return self.diagnose(bgr, decode_ms=(time.perf_counter() - t0) * 1e3)
