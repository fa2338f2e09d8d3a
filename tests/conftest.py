"""Fixtures every test folder shares. Tests that need ../shared fail loudly in CI and skip elsewhere.

Folders mirror the packages (core, hardware, store, export, sync, collector, wire, models, deploy),
each with its own conftest; helpers that are not fixtures live in tests/helpers/.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.figures import FIGURES
from tests.helpers.paths import MODEL, SHARED_DATA, SHARED_ROOT, SHARED_WEIGHTS

# The throw-away PostgreSQL and a fresh database per test: the collector, sync and crops tests use them.
pytest_plugins = ["tests.helpers.postgres"]


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


def pytest_terminal_summary(terminalreporter) -> None:
    if FIGURES:
        terminalreporter.section("figures reported by the tests")
        for line in FIGURES:
            terminalreporter.write_line(line)
