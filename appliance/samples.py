"""The sample leaf photos shipped with the software (see samples/ATTRIBUTION.md)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .vision.decode import IMAGE_SUFFIXES


def samples_dir() -> Path:
    return Path(str(resources.files("appliance").joinpath("samples")))


def sample_paths() -> list[Path]:
    return sorted(p for p in samples_dir().iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
