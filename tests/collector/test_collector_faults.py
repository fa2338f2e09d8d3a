"""Faults between a real device store and a real collector + PostgreSQL: nothing lost, nothing doubled.

Each scenario prints its counts (run with -s to see them): sent = records on the device,
stored = rows in PostgreSQL for that device, duplicates = rows stored twice (always 0),
lost = records sent but not stored (always 0).
"""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from appliance.sync import cmd_sync
from leaf_collector.throwaway import free_loopback_port
from leaf_wire import protocol
from tests.helpers.collector import (
    FaultProxy,
    db_counts,
    device_config,
    fill_store,
    in_process_collector,
    issue_token,
    print_counts,
    require_collector_packages,
    unsynced_ids,
    write_token,
)

DEVICE = "pi-field-07"


def sync(cfg) -> tuple[int, str]:
    out = io.StringIO()
    code = cmd_sync(cfg, out=out)
    return code, out.getvalue()


@pytest.fixture
def device(tmp_path: Path, dsn: str):
    """A device with 23 diagnoses (photos included) and a token, not yet pointed anywhere."""
    data = tmp_path / "device"
    ids = fill_store(data, 23, DEVICE)
    token_file = write_token(tmp_path / "sync.token", issue_token(dsn, DEVICE))
    return data, token_file, ids


class CollectorProcess:
    """`leaf-collector serve` as its own process, so it can be killed like a real one."""

    def __init__(self, dsn: str, port: int, *args: str) -> None:
        env = dict(os.environ, LEAF_COLLECTOR_DSN=dsn)
        command = [sys.executable, "-m", "leaf_collector", "serve", "--listen", f"127.0.0.1:{port}", *args]
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.port = port
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.process.stderr.read().decode() if self.process.stderr else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{protocol.HEALTH_PATH}", timeout=2):
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("collector did not start")

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def test_marks_lost_on_the_device_are_replayed_and_acknowledged_as_duplicates(device, dsn: str) -> None:
    data, token_file, ids = device
    server = in_process_collector(dsn)
    try:
        cfg = device_config(data, server.url, token_file, DEVICE, batch_size=10)
        assert sync(cfg)[0] == 0
        assert unsynced_ids(data) == set()
        # A power cut between the collector's reply and the device's mark_synced commit:
        with sqlite3.connect(data / "diagnoses.sqlite3") as conn:
            conn.execute("UPDATE diagnoses SET synced_at = NULL")
        code, out = sync(cfg)
        assert code == 0, out
        assert "sent 23: 0 stored, 23 already there; 0 waiting" in out
    finally:
        server.close()
    counts = print_counts("replayed batches", len(ids), dsn, DEVICE, acked_duplicates=23)
    assert counts == {"rows": 23, "distinct": 23, "duplicate_rows": 0, "photos": 23, "full_photos": 0}
    assert unsynced_ids(data) == set()


def test_reply_lost_after_the_collector_stored_the_batch(device, dsn: str) -> None:
    data, token_file, ids = device
    server = in_process_collector(dsn)
    proxy = FaultProxy(server.port)
    try:
        cfg = device_config(data, proxy.url, token_file, DEVICE, batch_size=10)
        proxy.fault = "drop_reply"
        code, out = sync(cfg)
        assert code == 1
        assert "interrupted" in out or "broke" in out
        assert unsynced_ids(data) == set(ids)  # nothing marked without an acknowledgement
        assert db_counts(dsn, DEVICE)["rows"] == 10  # ...but the collector did store the first batch
        code, out = sync(cfg)
        assert code == 0, out
        assert "sent 23: 13 stored, 10 already there; 0 waiting" in out
    finally:
        proxy.close()
        server.close()
    counts = print_counts("reply lost after commit", len(ids), dsn, DEVICE, acked_duplicates=10)
    assert (counts["rows"], counts["duplicate_rows"]) == (23, 0)


def test_connection_cut_in_the_middle_of_a_batch(device, dsn: str) -> None:
    data, token_file, ids = device
    server = in_process_collector(dsn)
    proxy = FaultProxy(server.port)
    try:
        cfg = device_config(data, proxy.url, token_file, DEVICE, batch_size=10)
        proxy.fault = "cut_request"
        code, out = sync(cfg)
        assert code == 1
        assert "sync stopped" in out
        assert db_counts(dsn, DEVICE)["rows"] == 0  # a half request stores nothing
        assert unsynced_ids(data) == set(ids)
        code, out = sync(cfg)
        assert code == 0, out
        assert "sent 23: 23 stored, 0 already there" in out
    finally:
        proxy.close()
        server.close()
    counts = print_counts("connection cut mid-batch", len(ids), dsn, DEVICE)
    assert (counts["rows"], counts["duplicate_rows"]) == (23, 0)


def test_collector_killed_after_storing_before_replying_then_restarted(device, dsn: str) -> None:
    data, token_file, ids = device
    port = free_loopback_port()
    collector = CollectorProcess(dsn, port)
    proxy = FaultProxy(port)
    proxy.on_reply = collector.kill  # SIGKILL the moment its reply starts: the batch is committed
    try:
        cfg = device_config(data, proxy.url, token_file, DEVICE, batch_size=10)
        proxy.fault = "on_reply"
        code, out = sync(cfg)
        assert code == 1, out
        assert collector.process.returncode is not None  # it really died
        assert db_counts(dsn, DEVICE)["rows"] == 10
        assert unsynced_ids(data) == set(ids)

        code, out = sync(cfg)  # collector still down (the proxy in front hangs up)
        assert code == 1
        assert "23 diagnoses waiting; nothing sent" in out
        assert unsynced_ids(data) == set(ids)

        collector = CollectorProcess(dsn, port)  # restarted on the same address
        code, out = sync(cfg)
        assert code == 0, out
        assert "sent 23: 13 stored, 10 already there; 0 waiting" in out
    finally:
        proxy.close()
        collector.stop()
    counts = print_counts("collector killed after commit, restarted", len(ids), dsn, DEVICE, acked_duplicates=10)
    assert (counts["rows"], counts["duplicate_rows"], counts["photos"]) == (23, 0, 23)


@pytest.mark.slow  # about 10 s: the pool waits out its reconnect backoff
def test_postgres_crash_and_restart_under_a_running_collector(tmp_path: Path) -> None:
    require_collector_packages()
    from leaf_collector.throwaway import PostgresMissing, ThrowawayPostgres

    try:
        pg = ThrowawayPostgres(durable=True).start()  # its own server (this test crashes it), fsync on
    except PostgresMissing as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    server = None
    try:
        url = pg.create_database("crash")
        server = in_process_collector(url)
        data = tmp_path / "device"
        ids = fill_store(data, 12, DEVICE)
        cfg = device_config(data, server.url, write_token(tmp_path / "t", issue_token(url, DEVICE)), DEVICE)
        pg.crash()
        code, out = sync(cfg)
        assert code == 1
        assert "retry" in out  # 503 + Retry-After from the collector, not a crash
        assert unsynced_ids(data) == set(ids)
        pg.restart()
        attempts = 0
        while attempts < 10:  # as a device does: retry after the 503 until the pool has reconnected
            attempts += 1
            code, out = sync(cfg)
            if code == 0:
                break
            assert "retry" in out, out
            time.sleep(1)
        assert code == 0, out
        print(f"\nPostgreSQL restart: the collector answered again on device attempt {attempts}")
        counts = print_counts("PostgreSQL crashed and restarted", len(ids), url, DEVICE)
        assert (counts["rows"], counts["duplicate_rows"]) == (12, 0)
    finally:
        if server is not None:
            server.close()
        pg.stop()


def test_wrong_then_revoked_token_sends_nothing_and_says_so(device, dsn: str, tmp_path: Path) -> None:
    from leaf_collector import tokens
    from leaf_collector.db import connect

    data, token_file, ids = device
    server = in_process_collector(dsn)
    try:
        wrong = write_token(tmp_path / "wrong.token", "leaf_wrong")
        code, out = sync(device_config(data, server.url, wrong, DEVICE))
        assert code == 1
        assert "refused this device's token" in out
        with connect(dsn) as conn:
            tokens.revoke(conn, DEVICE)
        code, out = sync(device_config(data, server.url, token_file, DEVICE))
        assert code == 1
        assert "refused this device's token (HTTP 401: unknown or revoked token)" in out
        assert unsynced_ids(data) == set(ids)
        assert db_counts(dsn, DEVICE)["rows"] == 0
    finally:
        server.close()


def test_oversized_batches_are_split_to_the_collectors_limit(device, dsn: str) -> None:
    data, token_file, ids = device
    server = in_process_collector(dsn, max_request_bytes=150_000)
    try:
        cfg = device_config(data, server.url, token_file, DEVICE, include_photos="full", batch_size=100)
        code, out = sync(cfg)
        assert code == 0, out
        assert "sent 23: 23 stored" in out
        assert out.count("  batch ") > 2  # one 100-record batch became several that fit
    finally:
        server.close()
    counts = print_counts("oversized batch split", len(ids), dsn, DEVICE)
    # 23 thumbnails in the photos table; the full photos once each in the photo store: the device's
    # 23 records replay the 9 sample photos, so 9 files and 9 field_photos rows.
    assert (counts["rows"], counts["duplicate_rows"], counts["photos"], counts["full_photos"]) == (23, 0, 23, 9)


def test_records_the_collector_refuses_stay_on_the_device_and_the_rest_goes(device, dsn: str) -> None:
    data, token_file, ids = device
    old = fill_store(data, 3, "old-hostname")  # written before the device was renamed
    server = in_process_collector(dsn)
    try:
        cfg = device_config(data, server.url, token_file, DEVICE, batch_size=10)
        code, out = sync(cfg)
        assert code == 1
        assert "sent 23: 23 stored" in out
        assert out.count("refused by the collector, kept here") == 3
        assert "does not match this token's device" in out
        assert unsynced_ids(data) == set(old)
    finally:
        server.close()
    counts = print_counts("refused records held back", len(ids), dsn, DEVICE)
    assert (counts["rows"], counts["duplicate_rows"]) == (23, 0)
