"""Photos in memory, and the augmentations that break PlantVillage's plain-background shortcut."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

from appliance.vision.preprocess import center_square, read_image, resize_square

from .split import Entry

STORE_SIZE = 256  # PlantVillage's native size; random crops are taken from this


def load_pixels(entries: list[Entry], root: Path, cache_dir: Path | None = None) -> np.ndarray:
    """All photos as one RGB uint8 array (N, 256, 256, 3), cached on disk between runs."""
    key = hashlib.sha256("".join(e.sha256 for e in entries).encode()).hexdigest()[:16]
    cache = cache_dir / f"pixels-{key}.npy" if cache_dir else None
    if cache is not None and cache.exists():
        return np.load(cache)
    out = np.empty((len(entries), STORE_SIZE, STORE_SIZE, 3), dtype=np.uint8)
    for i, e in enumerate(entries):
        bgr = read_image(root / e.file)
        out[i] = cv2.cvtColor(resize_square(center_square(bgr), STORE_SIZE), cv2.COLOR_BGR2RGB)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, out)
    return out


def leaf_mask(rgb: np.ndarray) -> np.ndarray:
    """Rough leaf mask of a lab photo: the plain backgrounds are grey, leaves are saturated."""
    hsv = cv2.cvtColor(cv2.GaussianBlur(rgb, (5, 5), 0), cv2.COLOR_RGB2HSV)
    mask = ((hsv[..., 1] > 50) & (hsv[..., 2] > 30)).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    if n <= 1:
        return np.zeros(mask.shape, np.float32)
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    soft = (labels == biggest).astype(np.float32)
    return cv2.GaussianBlur(soft, (7, 7), 0)


def random_scene(rng: np.random.Generator, size: int, scenes: np.ndarray | None) -> np.ndarray:
    """A background to paste a leaf onto: a crop of a real no-leaf photo, or a random texture."""
    if scenes is not None and len(scenes) and rng.random() < 0.7:
        scene = scenes[rng.integers(len(scenes))]
        return cv2.resize(scene, (size, size), interpolation=cv2.INTER_LINEAR)
    base = rng.integers(0, 256, size=(4, 4, 3)).astype(np.uint8)
    smooth = cv2.resize(base, (size, size), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0, rng.uniform(2, 25), smooth.shape)
    return np.clip(smooth + noise, 0, 255).astype(np.uint8)


def random_resized_crop(rgb: np.ndarray, rng: np.random.Generator, out: int, scale=(0.3, 1.0)) -> np.ndarray:
    h, w = rgb.shape[:2]
    for _ in range(10):
        area = h * w * rng.uniform(*scale)
        ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw, ch = int(round(np.sqrt(area * ratio))), int(round(np.sqrt(area / ratio)))  # noqa: RUF046
        if 0 < cw <= w and 0 < ch <= h:
            x, y = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
            return resize_square(rgb[y : y + ch, x : x + cw], out)
    return resize_square(rgb, out)


def colour_jitter(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = rgb.astype(np.float32)
    x *= rng.uniform(0.7, 1.3)  # brightness
    mean = x.mean()
    x = (x - mean) * rng.uniform(0.7, 1.3) + mean  # contrast
    grey = x.mean(axis=2, keepdims=True)
    x = (x - grey) * rng.uniform(0.7, 1.3) + grey  # saturation
    x *= rng.uniform(0.92, 1.08, size=3)  # white balance
    return np.clip(x, 0, 255).astype(np.uint8)


def augment(
    rgb: np.ndarray,
    rng: np.random.Generator,
    size: int,
    is_leaf: bool,
    scenes: np.ndarray | None,
    crop_min: float = 0.3,
    swap_p: float = 0.4,
) -> np.ndarray:
    """One training view of a stored photo (RGB uint8 at the model's size)."""
    img = rgb
    if is_leaf and rng.random() < swap_p:
        mask = leaf_mask(img)[..., None]
        if mask.mean() > 0.05:
            scene = random_scene(rng, img.shape[0], scenes).astype(np.float32)
            img = (img * mask + scene * (1 - mask)).astype(np.uint8)
    img = random_resized_crop(img, rng, size, scale=(crop_min, 1.0))
    if rng.random() < 0.5:
        img = img[:, ::-1]
    img = np.ascontiguousarray(np.rot90(img, int(rng.integers(4))))
    img = colour_jitter(img, rng)
    if rng.random() < 0.15:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.5))
    return img
