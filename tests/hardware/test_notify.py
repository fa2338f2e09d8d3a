"""The notify protocol over a real AF_UNIX datagram socket, as systemd would receive it."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.notify import Notifier, WatchdogGate


@pytest.fixture(params=["builtin", "systemd"])
def backend(request: pytest.FixtureRequest) -> str:
    """Each protocol test runs over the built-in sender and over systemd-python (required when CI=true)."""
    if request.param == "systemd":
        if os.environ.get("CI") == "true":
            try:
                import systemd.daemon  # noqa: F401
            except ImportError as error:
                pytest.fail(f"CI=true but systemd-python is not importable: {error}")
        else:
            pytest.importorskip("systemd.daemon")
    return request.param


@pytest.fixture
def listener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket standing in for systemd, with NOTIFY_SOCKET pointing at it."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        yield sock


def received(sock: socket.socket) -> list[str]:
    """Every datagram already queued (a local datagram is queued before sendto returns)."""
    messages = []
    sock.setblocking(False)
    try:
        while True:
            messages.append(sock.recv(4096).decode())
    except BlockingIOError:
        return messages
    finally:
        sock.setblocking(True)


def test_protocol_messages_arrive_in_order(backend: str, listener: socket.socket) -> None:
    notifier = Notifier(backend=backend)  # type: ignore[arg-type]
    assert notifier.backend == backend
    assert notifier.enabled
    notifier.ready()
    notifier.status("ready: press the button")
    notifier.watchdog()
    notifier.stopping()
    assert received(listener) == ["READY=1", "STATUS=ready: press the button", "WATCHDOG=1", "STOPPING=1"]


def test_ready_can_carry_a_status(backend: str, listener: socket.socket) -> None:
    Notifier(backend=backend).ready("camera ok")  # type: ignore[arg-type]
    assert received(listener) == ["READY=1\nSTATUS=camera ok"]


def test_status_is_kept_on_one_line(backend: str, listener: socket.socket) -> None:
    Notifier(backend=backend).status("camera fault\nretrying\r\nin 5 s")  # type: ignore[arg-type]
    assert received(listener) == ["STATUS=camera fault retrying in 5 s"]


def test_abstract_namespace_socket(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"leaf-appliance-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        notifier = Notifier(backend=backend)  # type: ignore[arg-type]
        notifier.ready()
        notifier.watchdog()
        assert received(sock) == ["READY=1", "WATCHDOG=1"]


def test_without_notify_socket_nothing_is_sent(
    backend: str, listener: socket.socket, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET")
    notifier = Notifier(backend=backend)  # type: ignore[arg-type]
    assert not notifier.enabled
    notifier.ready()
    notifier.status("x")
    notifier.watchdog()
    notifier.stopping()
    assert received(listener) == []
    assert caplog.records == []


def test_missing_socket_never_raises_and_is_logged_once(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    notifier = Notifier(backend=backend)  # type: ignore[arg-type]
    with caplog.at_level(logging.DEBUG, logger="appliance.notify"):
        notifier.ready()
        notifier.watchdog()
        notifier.stopping()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "cannot notify systemd" in warnings[0].getMessage()


def test_unsupported_address_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    Notifier(backend="builtin").ready()


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", None, 15.0),
        ("30000000", "self", 15.0),
        ("30000000", "other", None),
        (None, None, None),
        ("0", None, None),
        ("soon", None, None),
    ],
)
def test_watchdog_interval(monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None, expected: float) -> None:
    for name, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, {"self": str(os.getpid()), "other": str(os.getpid() + 1)}.get(value, value))
    assert Notifier(backend="builtin").watchdog_interval() == expected


# ---------------------------------------------------------------- the watchdog gate


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_gate_pings_only_while_the_loop_is_fresh(listener: socket.socket) -> None:
    clock = FakeClock()
    gate = WatchdogGate(Notifier(backend="builtin"), interval=10.0, clock=clock)
    gate.kick()
    clock.now += 9.0
    assert gate.tick()
    assert received(listener) == ["WATCHDOG=1"]

    clock.now += 2.0  # 11 s since the last kick: the loop is stuck
    assert not gate.tick()
    assert not gate.tick()
    assert received(listener) == []

    gate.kick()  # the loop recovered
    assert gate.tick()
    assert received(listener) == ["WATCHDOG=1"]


def test_gate_does_not_start_without_a_watchdog(listener: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    gate = WatchdogGate(Notifier(backend="builtin"))
    assert gate.interval is None
    assert not gate.start()
    gate.stop()
    assert received(listener) == []


def wait_until(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_healthy_loop_keeps_pinging_and_a_stuck_one_stops(
    listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # WatchdogSec=0.2s: ping every 0.05 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    listener.settimeout(10)
    healthy = threading.Event()
    healthy.set()

    def main_loop() -> None:
        while healthy.is_set():
            gate.kick()
            time.sleep(0.005)

    gate = WatchdogGate(Notifier(backend="builtin"))
    assert gate.interval == pytest.approx(0.1)
    loop = threading.Thread(target=main_loop)
    with gate:
        assert gate.active
        loop.start()
        try:
            assert [listener.recv(64) for _ in range(3)] == [b"WATCHDOG=1"] * 3
        finally:
            healthy.clear()  # the loop hangs from here on
            loop.join()
        wait_until(lambda: gate.withholding)
        received(listener)  # pings sent before the ticker noticed
        listener.settimeout(0.5)  # five ticker periods
        with pytest.raises(TimeoutError):
            listener.recv(64)
    assert gate.withholding
