"""Slow and hostile clients against the bare collector (waitress alone, no proxy in front).

Issue 11 reproduced it: ~100 connections that each send a request line and one header line
every few seconds kept waitress at its connection limit and reset its idle timeout, so
/healthz and every device got no answer. The hardened server takes far more connections and
closes a request whose headers have not arrived in time, however often it trickles.
"""

from __future__ import annotations

import json
import re
import socket
import time

from leaf_collector.slowclients import SlowClients
from leaf_wire import protocol
from tests.helpers.collector import call, issue_token, record


def test_slow_clients_do_not_lock_devices_out_of_the_bare_collector(collector, dsn: str) -> None:
    token = issue_token(dsn, "pi-01")
    with SlowClients("127.0.0.1", collector.port, 120, interval_s=1.0) as slow:
        assert slow.snapshot().open_now == 120
        status, _, body = call(collector.url + protocol.HEALTH_PATH)
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        batch = json.dumps({"schema": 1, "records": [record("pi-01")]}).encode()
        status, _, body = call(collector.url + protocol.API_PATH, batch, token)
        assert status == 200, body
        assert json.loads(body)["stored"] == 1
        held = slow.snapshot()
    assert held.open_now == 120 and held.closed_by_server == 0  # still trickling while the device was served


def test_a_request_whose_headers_trickle_in_is_closed_by_the_bare_collector(dsn: str) -> None:
    from tests.helpers.collector import in_process_collector

    server = in_process_collector(dsn, header_timeout_s=2.0)
    try:
        with SlowClients("127.0.0.1", server.port, 5, interval_s=0.5, reopen=False) as slow:
            deadline = time.monotonic() + 60
            while slow.snapshot().closed_by_server < 5 and time.monotonic() < deadline:
                time.sleep(0.2)
            counts = slow.snapshot()
        assert counts.closed_by_server == 5, counts
        assert counts.trickles_sent >= 5  # they did trickle: the idle timeout alone would not close them
    finally:
        server.close()


def test_an_idle_keep_alive_connection_is_not_cut_by_the_header_deadline(dsn: str) -> None:
    from tests.helpers.collector import in_process_collector

    server = in_process_collector(dsn, header_timeout_s=1.0)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            request = f"GET {protocol.HEALTH_PATH} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            sock.sendall(request)
            assert _whole_response(sock).startswith(b"HTTP/1.1 200")
            time.sleep(3)  # idle between requests: waitress's channel timeout decides, not the header deadline
            sock.sendall(request)
            assert _whole_response(sock).startswith(b"HTTP/1.1 200")
    finally:
        server.close()


def _whole_response(sock: socket.socket) -> bytes:
    """One response read to its last body byte: waitress may send the headers and body in two writes."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    found = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    assert found, f"no Content-Length in {head!r}"
    length = int(found.group(1))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-body after {body!r}"
        body += chunk
    return head + b"\r\n\r\n" + body


def test_the_load_test_fails_on_each_must_show_figure() -> None:
    from leaf_collector.loadtest import failures

    def result(**changes: object) -> dict:
        good = {
            "complete": True,
            "lost": 0,
            "rows_in_postgres": 100,
            "records_sent": 100,
            "duplicate_rows_in_postgres": 0,
            "batch_latency_ms": {"p95": 900.0},
            "slow_connections": {"wanted": 500, "open_when_devices_started": 500},
            "healthz": {"unanswered": 0},
        }
        return good | changes

    assert failures(result(), 5000) == []
    assert failures(result(batch_latency_ms={"p95": 5001.0}), 5000) == ["batch p95 5001.0 ms is over 5000 ms"]
    assert failures(result(batch_latency_ms={"p95": 5001.0}), None) == []  # no threshold given: not checked
    assert failures(result(lost=1, rows_in_postgres=99), None) == ["1 lost; 99 rows for 100 sent"]
    assert failures(result(duplicate_rows_in_postgres=2), None) == ["2 duplicate rows"]
    assert failures(result(complete=False), None) == ["not every device finished"]
    assert failures(result(slow_connections={"wanted": 500, "open_when_devices_started": 80}), None) == [
        "only 80 of 500 slow connections were open"
    ]
    assert failures(result(healthz={"unanswered": 3}), None) == ["3 /healthz probes unanswered"]
