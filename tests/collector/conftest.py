"""Tests of the fleet collector: API, page (in headless Chromium), faults, on a throw-away PostgreSQL
(the `postgres` and `dsn` fixtures come from tests/helpers/postgres.py, loaded by the root conftest)."""

from __future__ import annotations

import pytest

from tests.helpers.collector import in_process_collector


@pytest.fixture
def collector(dsn: str):
    server = in_process_collector(dsn)
    yield server
    server.close()
