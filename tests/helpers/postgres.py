"""A pytest plugin (tests/conftest.py loads it): one throw-away PostgreSQL per session, a fresh database per test.

Without the PostgreSQL binaries or the collector's Python packages the tests skip with the
reason, and fail loudly when CI=true.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from leaf_collector import throwaway
from tests.helpers.collector import require, require_collector_packages


@pytest.fixture(scope="session")
def postgres() -> Iterator[throwaway.ThrowawayPostgres]:
    require_collector_packages()
    try:
        server = throwaway.acquire_shared()
    except throwaway.PostgresMissing as exc:
        require(False, str(exc))
        raise
    try:
        yield server
    finally:
        throwaway.release_shared()


@pytest.fixture
def dsn(postgres: throwaway.ThrowawayPostgres) -> str:
    """A fresh, migrated database for one test."""
    from leaf_collector.db import migrate

    url = postgres.create_database(f"t_{uuid.uuid4().hex[:12]}")
    migrate(url)
    return url
