"""The confusion matrix as a PNG, drawn with Pillow (no plotting library to install)."""

from __future__ import annotations

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
