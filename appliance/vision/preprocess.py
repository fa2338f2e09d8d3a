"""Turn a decoded photo into the classifier's input tensor.

Training (models/pipeline) calls these same functions, so what the model saw in
training is exactly what it sees on the device.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class InputSpec:
    """How the model wants its input; read from the model's own metadata."""

    size: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)


def center_square(image: np.ndarray) -> np.ndarray:
    """The largest centred square: camera frames are 4:3, the model wants 1:1."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return image[top : top + side, left : left + side]


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    interp = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def to_tensor(rgb_square: np.ndarray, spec: InputSpec) -> np.ndarray:
    """RGB uint8 HxWx3 at the model's size to a normalised float32 1x3xHxW tensor."""
    x = rgb_square.astype(np.float32) * (1.0 / 255.0)
    x -= np.asarray(spec.mean, dtype=np.float32)
    x /= np.asarray(spec.std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def model_view(bgr: np.ndarray, size: int) -> np.ndarray:
    """The RGB square at the model's size: exactly the pixels the classifier sees."""
    square = resize_square(center_square(bgr), size)
    return cv2.cvtColor(square, cv2.COLOR_BGR2RGB)


def preprocess(bgr: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Upright BGR photo to the model input tensor."""
    return to_tensor(model_view(bgr, spec.size), spec)
