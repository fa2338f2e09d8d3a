"""Photos in memory, and the augmentations that break PlantVillage's plain-background shortcut."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

from appliance.vision.decode import read_image
from appliance.vision.preprocess import center_square, resize_square

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


def field_light(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Outdoor light: a gamma change, a soft shadow or sun gradient across the frame, a colour cast."""
    x = rgb.astype(np.float32) / 255.0
    x = x ** rng.uniform(0.7, 1.4)
    if rng.random() < 0.5:
        h, w = x.shape[:2]
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        ramp = (np.cos(angle) * (xx / w - 0.5) + np.sin(angle) * (yy / h - 0.5)) * 2
        x *= (1 + rng.uniform(0.2, 0.6) * np.clip(ramp, -1, 1))[..., None]
    if rng.random() < 0.3:
        x *= rng.uniform(0.85, 1.15, size=3)  # stronger cast (evening light, camera tint)
    return np.clip(x * 255, 0, 255).astype(np.uint8)


def paste_on_scene(
    rgb: np.ndarray, mask: np.ndarray, scene: np.ndarray, rng: np.random.Generator, min_scale: float
) -> np.ndarray:
    """The masked leaf on a scene, at a random scale and place: leaves are not always frame-filling."""
    size = rgb.shape[0]
    scale = rng.uniform(min_scale, 1.0)
    if scale < 0.98:
        side = max(8, int(size * scale))
        leaf = cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA)
        m = cv2.resize(mask, (side, side), interpolation=cv2.INTER_LINEAR)
        x, y = rng.integers(0, size - side + 1, size=2)
        full_leaf = np.zeros_like(rgb)
        full_mask = np.zeros(mask.shape, np.float32)
        full_leaf[y : y + side, x : x + side] = leaf
        full_mask[y : y + side, x : x + side] = m
        rgb, mask = full_leaf, full_mask
    m3 = mask[..., None]
    return (rgb * m3 + scene.astype(np.float32) * (1 - m3)).astype(np.uint8)


def augment(
    rgb: np.ndarray,
    rng: np.random.Generator,
    size: int,
    is_leaf: bool,
    scenes: np.ndarray | None,
    crop_min: float = 0.3,
    swap_p: float = 0.4,
    leaf_scale_min: float = 1.0,
    field_light_p: float = 0.0,
) -> np.ndarray:
    """One training view of a stored photo (RGB uint8 at the model's size).

    ``is_leaf`` marks photos whose leaf can be cut out of a plain background (lab photos,
    picked leaves on paper or cloth); only those get a new background and a new scale.
    """
    img = rgb
    swapped = False
    if is_leaf and rng.random() < swap_p:
        mask = leaf_mask(img)
        if mask.mean() > 0.05:
            img = paste_on_scene(img, mask, random_scene(rng, img.shape[0], scenes), rng, leaf_scale_min)
            swapped = True
    img = random_resized_crop(img, rng, size, scale=(max(crop_min, 0.6) if swapped else crop_min, 1.0))
    if rng.random() < 0.5:
        img = img[:, ::-1]
    img = np.ascontiguousarray(np.rot90(img, int(rng.integers(4))))
    img = colour_jitter(img, rng)
    if rng.random() < field_light_p:
        img = field_light(img, rng)
    if rng.random() < 0.15:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.5))
    return img
