"""The simulated button over a real AF_UNIX socket and a real pipe standing in for stdin."""

from __future__ import annotations

import os
import queue
import shutil
import socket
import stat
import tempfile
import threading
from pathlib import Path

import pytest

from appliance.errors import ApplianceError, ApplianceNotRunning
from appliance.hardware.sim_button import SimulatedButton, send_command, send_press
from appliance.ports import Button, Press


@pytest.fixture
def sock_dir():
    # pytest's tmp_path can exceed the 107-byte limit of a Unix socket path
    d = Path(tempfile.mkdtemp(prefix="simbtn-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def running(sock_dir):
    presses: queue.Queue[Press] = queue.Queue()
    button = SimulatedButton(socket_path=sock_dir / "button.sock")
    button.start(presses.put)
    yield button, presses
    button.close()


def raw_exchange(path: Path, payload: bytes) -> list[str]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(path))
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return data.decode().splitlines()


def test_press_long_and_ping_over_the_socket(running):
    button, presses = running
    assert isinstance(button, Button)
    path = button.socket_path
    assert send_press(path) == "ok"
    assert presses.get(timeout=5) == Press.SHORT
    assert send_press(path, long=True) == "ok"
    assert presses.get(timeout=5) == Press.LONG
    assert send_command(path, "ping") == "pong"
    assert send_command(path, "  SHORT ") == "ok"
    assert presses.get(timeout=5) == Press.SHORT
    assert presses.empty()


def test_several_commands_on_one_connection_each_get_an_answer(running):
    button, presses = running
    replies = raw_exchange(button.socket_path, b"ping\npress\nfrobnicate\nlong\r\n")
    assert replies == ["pong", "ok", "error: unknown command 'frobnicate' (use press, long, ping)", "ok"]
    assert [presses.get(timeout=5), presses.get(timeout=5)] == [Press.SHORT, Press.LONG]


def test_bad_input_gets_an_error_not_a_crash(running):
    button, presses = running
    path = button.socket_path
    assert raw_exchange(path, b"\xff\xfe\n")[0].startswith("error: command is not UTF-8")
    too_long = "error: line longer than 1024 bytes"
    assert raw_exchange(path, b"x" * 5000 + b"\nping\n") == [too_long, "pong"]  # the connection goes on
    assert raw_exchange(path, b"x" * 1025 + b"\n") == [too_long]
    assert raw_exchange(path, b"y" * 3000) == [too_long]  # no newline at all
    assert raw_exchange(path, b"ping") == ["pong"]  # a last command without newline still counts
    assert send_command(path, "ping") == "pong"  # still serving
    assert presses.empty()


def test_socket_is_private_and_removed_on_close(sock_dir):
    path = sock_dir / "button.sock"
    button = SimulatedButton(socket_path=path)
    button.start(lambda p: None)
    mode = path.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    button.close()
    assert not path.exists()
    button.close()


def test_stale_socket_from_a_crashed_run_is_replaced(sock_dir):
    path = sock_dir / "button.sock"
    crashed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    crashed.bind(str(path))
    crashed.close()  # leaves the file behind with nobody listening
    presses: queue.Queue[Press] = queue.Queue()
    button = SimulatedButton(socket_path=path)
    button.start(presses.put)
    assert send_press(path) == "ok"
    assert presses.get(timeout=5) == Press.SHORT
    button.close()


def test_live_socket_and_regular_file_are_not_replaced(running, sock_dir):
    button, _ = running
    with pytest.raises(ApplianceError, match="already listening"):
        SimulatedButton(socket_path=button.socket_path).start(lambda p: None)
    assert send_command(button.socket_path, "ping") == "pong"  # first one unharmed
    precious = sock_dir / "notes.txt"
    precious.write_text("keep me")
    with pytest.raises(ApplianceError, match="not a socket"):
        SimulatedButton(socket_path=precious).start(lambda p: None)
    assert precious.read_text() == "keep me"


def test_send_press_without_appliance_says_what_to_do(sock_dir):
    with pytest.raises(ApplianceNotRunning, match=r"no appliance listening at .*missing\.sock"):
        send_press(sock_dir / "missing.sock")


def test_handler_failure_is_reported_to_the_client(sock_dir):
    def broken(press):
        raise RuntimeError("state machine exploded")

    button = SimulatedButton(socket_path=sock_dir / "b.sock")
    button.start(broken)
    assert send_press(button.socket_path).startswith("error: the appliance failed to handle the press")
    assert send_command(button.socket_path, "ping") == "pong"
    button.close()


def test_too_long_socket_path_is_a_clear_error(tmp_path):
    path = tmp_path / ("d" * 120) / "button.sock"
    with pytest.raises(ApplianceError, match="too long for a Unix socket"):
        SimulatedButton(socket_path=path).start(lambda p: None)


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_stdin_enter_is_short_l_is_long_and_eof_stops_quietly():
    read_fd, write_fd = os.pipe()
    stream = os.fdopen(read_fd, "r")
    presses: queue.Queue[Press] = queue.Queue()
    button = SimulatedButton(stdin=True, stdin_stream=stream)
    button.start(presses.put)
    with os.fdopen(write_fd, "w") as w:
        w.write("\nl\nnonsense\nlong\n\n")
    assert [presses.get(timeout=5) for _ in range(4)] == [Press.SHORT, Press.LONG, Press.LONG, Press.SHORT]
    for thread in threading.enumerate():
        if thread.name == "sim-button-stdin":
            thread.join(timeout=5)
            assert not thread.is_alive()  # EOF ends the reader quietly
    assert presses.empty()
    button.close()
    stream.close()


def test_press_wait_answers_with_the_outcome(sock_dir):
    presses: queue.Queue[Press] = queue.Queue()
    button = SimulatedButton(socket_path=sock_dir / "b.sock")
    button.start(presses.put)
    path = button.socket_path
    assert send_press(path, wait=True).startswith("error: this appliance cannot wait")
    assert presses.empty()  # refused before pressing

    asked = []

    def waiter(do_press, timeout):
        asked.append(timeout)
        do_press()
        return "ok diagnosis tomato_early_blight 87%\ntotal 120 ms"

    button.set_result_waiter(waiter)
    assert send_press(path, long=True, wait=True, timeout=12) == "ok diagnosis tomato_early_blight 87% total 120 ms"
    assert presses.get(timeout=5) == Press.LONG
    assert asked == [12.0]
    assert send_command(path, "press wait").startswith("ok diagnosis")
    assert asked[-1] == 60.0
    for bad in ("press wait soon", "press now", "press wait 1 2"):
        assert send_command(path, bad).startswith("error: unknown command"), bad
    button.close()


def test_idle_connections_are_capped_and_the_extra_one_is_told_so(running):
    """1,000 idle connections made 1,004 threads; now the 17th is answered 'busy' and closed."""
    from appliance.hardware.sim_button import MAX_CLIENTS

    button, presses = running
    idle = []
    try:
        for _ in range(MAX_CLIENTS):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(button.socket_path))  # blocking: waits for room in the listen backlog
            s.settimeout(5)
            idle.append(s)
        s.sendall(b"ping\n")  # the last of them is served
        assert s.recv(100) == b"pong\n"
        extra = raw_exchange(button.socket_path, b"press\n")
        assert extra == [f"error: busy: {MAX_CLIENTS} connections already open"] and presses.empty()
        alive = [t for t in threading.enumerate() if t.name == "sim-button-client"]
        assert len(alive) <= MAX_CLIENTS
    finally:
        for s in idle:
            s.close()
    for _ in range(100):  # once they are gone, presses get through again
        try:
            if send_press(button.socket_path) == "ok":
                break
        except ApplianceError:
            pass
        threading.Event().wait(0.05)
    assert presses.get(timeout=5) is Press.SHORT
