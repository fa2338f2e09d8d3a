"""Shared fixtures. Tests that need ../shared fail loudly in CI and skip elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "plantvillage"
SHARED_ROOT = REPO.parent / "shared" / "data"  # plantvillage/, field/apple/, other-plants/deepweeds/
SHARED_WEIGHTS = REPO.parent / "shared" / "weights" / "mobilenetv2-12-int8.onnx"
MODEL = REPO / "models" / "leafnet-int8.onnx"


def _require(path: Path) -> Path:
    if path.exists():
        return path
    message = f"{path} is missing: this test reads ../shared beside the checkout"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _require(SHARED_DATA)


@pytest.fixture(scope="session")
def shared_root() -> Path:
    """Every photo source the model is trained and judged on."""
    for sub in ("plantvillage", "field/apple", "other-plants/deepweeds"):
        _require(SHARED_ROOT / sub)
    return SHARED_ROOT


@pytest.fixture(scope="session")
def shared_weights() -> Path:
    return _require(SHARED_WEIGHTS)


@pytest.fixture(scope="session")
def diagnoser():
    from appliance.classifier import OnnxClassifier
    from appliance.diagnosis import Diagnoser

    clf = OnnxClassifier(MODEL, threads=1)
    return Diagnoser(clf, clf.info)


# Figures that torture, fault and load tests report (counts: kills survived, rows verified,
# duplicates...). They are printed together at the end of every run, so CI shows them
# without `-s`.
_FIGURES: list[str] = []


def report_figure(line: str) -> None:
    _FIGURES.append(line.strip())


def pytest_terminal_summary(terminalreporter) -> None:
    if _FIGURES:
        terminalreporter.section("figures reported by the tests")
        for line in _FIGURES:
            terminalreporter.write_line(line)
