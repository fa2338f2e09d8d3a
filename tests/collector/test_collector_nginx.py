"""The production shape: a real Debian nginx (the shipped config) in front of a real collector and PostgreSQL.

nginx must hold slow clients so that waitress never sees them, and refuse a request without a
valid token from its headers, before its body is read. Without nginx these tests skip with the
reason, and fail loudly when CI=true.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import subprocess
import time
from pathlib import Path

import pytest

from appliance.sync import cmd_sync
from leaf_collector.throwaway import free_loopback_port
from leaf_wire import protocol
from tests.helpers.collector import (
    call,
    db_counts,
    device_config,
    fill_store,
    issue_token,
    record,
    require,
    unsynced_ids,
    write_token,
)

MIB = 1024 * 1024


@pytest.fixture
def proxy(collector):
    from leaf_collector.nginx import NginxMissing, NginxProxy

    try:
        nginx = NginxProxy(collector.port, free_loopback_port())
    except NginxMissing as exc:
        require(False, str(exc))
        raise
    with nginx:
        yield nginx


def headers_only(port: int, length: int, token: str | None) -> bytes:
    """Sends a POST's headers announcing `length` body bytes, never the body, and returns the reply:
    it can only come if the server decided from the headers alone."""
    lines = [f"POST {protocol.API_PATH} HTTP/1.1", "Host: collector", "Content-Type: application/json"]
    lines.append(f"Content-Length: {length}")
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        reply = b""
        while b"\r\n\r\n" not in reply or not _complete(reply):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    return reply


def _complete(reply: bytes) -> bool:
    head, _, body = reply.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def status_and_json(reply: bytes) -> tuple[int, dict, bytes]:
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body), head


def test_a_device_syncs_through_nginx_and_the_page_is_served(proxy, dsn: str, tmp_path: Path) -> None:
    data = tmp_path / "device"
    ids = fill_store(data, 23, "pi-03")
    token_file = write_token(tmp_path / "sync.token", issue_token(dsn, "pi-03"))
    out = io.StringIO()
    code = cmd_sync(device_config(data, proxy.url, token_file, "pi-03", batch_size=10), out=out)
    assert code == 0, out.getvalue()
    assert "sent 23: 23 stored" in out.getvalue()
    assert unsynced_ids(data) == set()
    assert db_counts(dsn, "pi-03") == {"rows": 23, "distinct": 23, "duplicate_rows": 0, "photos": 23, "full_photos": 0}
    status, _, body = call(proxy.url + "/")
    assert status == 200 and b"pi-03" in body
    assert call(proxy.url + protocol.HEALTH_PATH)[0] == 200
    assert len(ids) == 23


def test_no_wrong_or_revoked_token_gets_401_before_the_body_is_sent(proxy, dsn: str) -> None:
    from leaf_collector import tokens
    from leaf_collector.db import connect

    revoked = issue_token(dsn, "pi-gone")
    with connect(dsn) as conn:
        tokens.revoke(conn, "pi-gone")
    for token in (None, "not-a-token", revoked):
        reply = headers_only(proxy.port, 15 * MIB, token)  # under the limit: only the token decides
        status, body, head = status_and_json(reply)
        assert status == 401, reply[:300]
        assert "token" in body["error"]
        assert b'WWW-Authenticate: Bearer realm="leaf-collector"' in head
    assert db_counts(dsn)["rows"] == 0


def test_a_body_over_the_limit_gets_413_with_the_limit_before_it_is_sent(proxy, dsn: str) -> None:
    token = issue_token(dsn, "pi-04")
    for who in (token, None):
        status, body, _ = status_and_json(headers_only(proxy.port, 30 * MIB, who))
        assert status == 413
        assert body["max_bytes"] == protocol.DEFAULT_MAX_REQUEST_BYTES


def test_the_device_client_reads_nginx_refusals_as_it_reads_the_collectors(proxy, dsn: str) -> None:
    from leaf_wire.client import CollectorClient, TokenRefused

    client = CollectorClient(proxy.url, "wrong-token", timeout_s=10)
    with pytest.raises(TokenRefused):
        client.push([record("pi-05")])
    good = CollectorClient(proxy.url, issue_token(dsn, "pi-05"), timeout_s=10)
    assert good.whoami().device_id == "pi-05"
    assert good.push([record("pi-05")]).stored == 1


def test_the_auth_endpoint_is_not_reachable_through_nginx(proxy, dsn: str) -> None:
    token = issue_token(dsn, "pi-06")
    assert call(proxy.url + "/api/v1/auth", token=token)[0] == 404


def test_slow_clients_through_nginx_are_held_and_cut_while_devices_are_served(proxy, collector, dsn: str) -> None:
    from leaf_collector.slowclients import SlowClients

    token = issue_token(dsn, "pi-07")
    with SlowClients("127.0.0.1", proxy.port, 300, interval_s=3.0) as slow:
        assert slow.snapshot().open_now == 300
        for n in range(3):
            batch = json.dumps({"schema": 1, "records": [record("pi-07", n)]}).encode()
            status, _, body = call(proxy.url + protocol.API_PATH, batch, token)
            assert status == 200, body
        assert call(proxy.url + protocol.HEALTH_PATH)[0] == 200
        deadline = time.monotonic() + 60  # nginx's client_header_timeout (10 s) cuts them, however they trickle
        while slow.snapshot().closed_by_server < 300 and time.monotonic() < deadline:
            time.sleep(0.5)
        counts = slow.snapshot()
    assert counts.closed_by_server >= 300, counts
    assert counts.trickles_sent >= 600  # each trickled at least twice: the cut is not an idle timeout
    assert db_counts(dsn, "pi-07")["rows"] == 3
    assert collector.deadline.closed == 0  # waitress never saw a slow request: nginx held them all


def test_nginx_config_command_prints_a_site_nginx_accepts(tmp_path: Path) -> None:
    from leaf_collector.cli import main
    from leaf_collector.nginx import NginxMissing, find_nginx

    try:
        binary = find_nginx()
    except NginxMissing as exc:
        require(False, str(exc))
        raise
    conf = tmp_path / "nginx.conf"
    with conf.open("w") as out, contextlib.redirect_stdout(out):
        assert main(["nginx-config", "--standalone", str(tmp_path), "--listen", "127.0.0.1:8443"]) == 0
    text = conf.read_text()
    assert "auth_request /_leaf_auth;" in text and "listen 127.0.0.1:8443;" in text
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / "temp" / name).mkdir(parents=True)
    result = subprocess.run([binary, "-t", "-p", str(tmp_path), "-c", str(conf)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
