"""The confusion matrix as a PNG, drawn with Pillow (no plotting library to install)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def _font(size: int) -> ImageFont.ImageFont:
    from importlib import resources

    fonts = resources.files("appliance").joinpath("data/fonts")
    for name in ("DejaVuSans.ttf",):
        try:
            return ImageFont.truetype(str(fonts.joinpath(name)), size)
        except OSError:
            continue
    return ImageFont.load_default(size)


def confusion_png(matrix: np.ndarray, classes: list[str], path: Path, title: str) -> None:
    """Rows: true class, columns: predicted; each row normalised, counts written in the cells."""
    n = len(classes)
    cell, left, top = 22, 260, 260
    img = Image.new("RGB", (left + n * cell + 20, top + n * cell + 40), "white")
    draw = ImageDraw.Draw(img)
    small, big = _font(11), _font(16)
    draw.text((10, 10), title, fill="black", font=big)
    draw.text((10, 34), "rows: true class, columns: predicted; colour = share of the row", fill="#444", font=small)
    rows = matrix.sum(axis=1, keepdims=True).clip(min=1)
    share = matrix / rows
    for i in range(n):
        draw.text((8, top + i * cell + 5), classes[i][:38], fill="black", font=small)
        label = Image.new("RGBA", (250, cell), (255, 255, 255, 0))
        ImageDraw.Draw(label).text((4, 5), classes[i][:38], fill="black", font=small)
        img.paste(label.rotate(90, expand=True), (left + i * cell, top - 252), label.rotate(90, expand=True))
        for j in range(n):
            v = share[i, j]
            colour = (
                (int(255 - 200 * v), int(255 - 140 * v), 255)
                if i == j
                else (255, int(255 - 220 * v), int(255 - 220 * v))
            )
            x, y = left + j * cell, top + i * cell
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=colour, outline="#ddd")
            if matrix[i, j]:
                draw.text((x + 3, y + 5), str(int(matrix[i, j])), fill="black", font=small)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def reliability_png(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str, bins: int = 15) -> None:
    """Reliability diagram: per confidence bin, the share right against the mean confidence.

    ``curves`` maps a name to (calibrated probabilities (N, C), labels (N,)); one line and dots each.
    """
    size, pad = 520, 60
    img = Image.new("RGB", (size + 2 * pad, size + 2 * pad + 20 * len(curves)), "white")
    draw = ImageDraw.Draw(img)
    small, big = _font(12), _font(16)
    draw.text((10, 10), title, fill="black", font=big)

    def xy(conf: float, acc: float) -> tuple[float, float]:
        return pad + conf * size, pad + (1 - acc) * size

    draw.rectangle((pad, pad, pad + size, pad + size), outline="#888")
    for t in range(0, 11, 2):
        v = t / 10
        draw.text((pad + v * size - 8, pad + size + 6), f"{v:.1f}", fill="#444", font=small)
        draw.text((pad - 30, pad + (1 - v) * size - 7), f"{v:.1f}", fill="#444", font=small)
    draw.line((*xy(0, 0), *xy(1, 1)), fill="#bbb", width=1)
    draw.text((pad + size / 2 - 60, pad + size + 24), "calibrated confidence", fill="black", font=small)
    draw.text((8, pad - 20), "share right", fill="black", font=small)
    colours = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
    edges = np.linspace(0, 1, bins + 1)
    for k, (name, (probs, labels)) in enumerate(curves.items()):
        conf, right = probs.max(axis=1), probs.argmax(axis=1) == labels
        points = []
        for lo, hi in itertools.pairwise(edges):
            sel = (conf > lo) & (conf <= hi)
            if sel.sum() >= 5:
                points.append((xy(float(conf[sel].mean()), float(right[sel].mean())), int(sel.sum())))
        colour = colours[k % len(colours)]
        if len(points) > 1:
            draw.line([p for p, _ in points], fill=colour, width=2)
        for (x, y), n in points:
            r = 3 + min(6, n**0.5 / 4)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        draw.text((pad, pad + size + 44 + 20 * k), f"{name} ({len(labels)} photos)", fill=colour, font=small)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
