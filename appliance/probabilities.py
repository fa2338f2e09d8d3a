"""The calibrated probabilities: one softmax for the device, the evaluation and the calibration fit.

Core, not the onnxruntime adapter: the diagnosis renormalises over a crop set with it too.
"""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Temperature-scaled softmax over the last axis: the calibrated probabilities.

    The device, the evaluation and the calibration fit all use this one function.
    """
    z = np.asarray(logits, dtype=np.float64) / temperature
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def shown_percent(probability: float) -> int:
    """Confidence as a person sees it: whole percent, never 100 (a calibrated 99.8% is still wrong now and then)."""
    return min(99, round(probability * 100))
