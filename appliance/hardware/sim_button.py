"""A button for simulation mode: a local control socket and/or the terminal's Enter key.

``appliance press`` (through :func:`send_press`) and tests press it over the socket; a
person at a terminal presses Enter. Line protocol on the AF_UNIX stream socket, one
command per line, one answer line per command:

    press | short  -> Press.SHORT, answers "ok"
    long           -> Press.LONG,  answers "ok"
    ping           -> answers "pong"
    press wait [S] -> presses, then answers with the outcome once the appliance has handled
                      it (at most S seconds, default 60); needs a result waiter, see
                      :meth:`SimulatedButton.set_result_waiter`
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from ..errors import ApplianceError, ApplianceNotRunning
from ..ports import Press
from .closing import Closing

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 1024
MAX_SOCKET_PATH_BYTES = 107  # sun_path is 108 bytes with the terminating NUL on Linux
CLIENT_IDLE_S = 30.0
MAX_CLIENTS = 16  # control-socket connections served at once; more are told so and closed
COMMANDS = {"press": Press.SHORT, "short": Press.SHORT, "long": Press.LONG}
USAGE = "use press, long, ping"
DEFAULT_WAIT_S = 60.0
MAX_WAIT_S = 600.0

# Given "do the press" and a timeout in seconds, presses and returns one line describing the outcome.
ResultWaiter = Callable[[Callable[[], bool], float], str]  # (press, seconds) -> one line


def answer(line: bytes, on_press: Callable[[Press], object], waiter: ResultWaiter | None = None) -> str:
    """The reply to one command line (without its newline); presses the button as a side effect."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return f"error: command is not UTF-8 text ({USAGE})"
    command = text.strip().lower()
    if command == "ping":
        return "pong"
    words = command.split()
    press = COMMANDS.get(words[0]) if words else None
    wait = len(words) >= 2 and words[1] == "wait"
    wait_s = DEFAULT_WAIT_S
    if wait and len(words) == 3:
        try:
            wait_s = min(MAX_WAIT_S, max(0.1, float(words[2])))
        except ValueError:
            press = None
    if press is None or (len(words) > 1 and not wait) or len(words) > 3:
        shown = command if len(command) <= 40 else command[:40] + "…"
        return f"error: unknown command '{shown}' ({USAGE})"

    def do_press() -> bool:
        return on_press(press) is not False  # a handler that returns nothing takes every press

    try:
        if not wait:
            do_press()
            return "ok"
        if waiter is None:
            return "error: this appliance cannot wait for results; press without waiting"
        return " ".join(waiter(do_press, wait_s).split()) or "ok"  # always exactly one line
    except Exception as exc:
        log.exception("button handler failed on a simulated %s press", press.value)
        return f"error: the appliance failed to handle the press ({exc})"


def _refuse(conn: socket.socket, message: str) -> None:
    """Answer one line and close; the client's command is read first (briefly), or closing resets the line."""
    with contextlib.suppress(OSError), conn:
        conn.settimeout(0.05)
        conn.sendall(message.encode() + b"\n")
        conn.shutdown(socket.SHUT_WR)
        conn.recv(MAX_LINE_BYTES)


class SimulatedButton(Closing):
    """Delivers presses from a control socket at ``socket_path`` and/or from stdin.

    On stdin, Enter is a short press and ``l`` + Enter a long one; end of input stops
    reading quietly (e.g. when run under systemd with no terminal).
    """

    def __init__(
        self,
        socket_path: Path | None = None,
        stdin: bool = False,
        stdin_stream: TextIO | None = None,
    ) -> None:
        self.socket_path = Path(socket_path) if socket_path is not None else None
        self.stdin = stdin
        self._stdin_stream = stdin_stream
        self._server: socket.socket | None = None
        self._socket_ino: int | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._clients: set[socket.socket] = set()
        self._clients_lock = threading.Lock()
        self._on_press: Callable[[Press], object] = lambda press: None
        self._waiter: ResultWaiter | None = None

    def set_result_waiter(self, waiter: ResultWaiter | None) -> None:
        """Lets ``press wait`` answer with the outcome (the daemon knows when a press is done)."""
        self._waiter = waiter

    def start(self, on_press: Callable[[Press], object]) -> None:
        self._on_press = on_press
        if self.socket_path is not None:
            self._server = self._listen(self.socket_path)
            self._spawn(self._accept_loop, "sim-button-socket")
        if self.stdin:
            self._spawn(self._stdin_loop, "sim-button-stdin")

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)

    def _listen(self, path: Path) -> socket.socket:
        if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
            raise ApplianceError(
                f"socket path {path} is too long for a Unix socket "
                f"({len(os.fsencode(path))} bytes, at most {MAX_SOCKET_PATH_BYTES}): choose a shorter one"
            )
        _remove_stale_socket(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            server.bind(str(path))
            os.chmod(path, 0o600)  # only this user may press the button
            server.listen(8)
            server.settimeout(0.2)  # lets the loop notice close()
        except OSError as exc:
            server.close()
            raise ApplianceError(f"cannot listen for simulated presses at {path}: {exc.strerror or exc}") from None
        self._socket_ino = path.stat().st_ino
        return server

    def _accept_loop(self) -> None:
        server = self._server
        assert server is not None
        while not self._stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            with self._clients_lock:
                full = len(self._clients) >= MAX_CLIENTS
                if not full:
                    self._clients.add(conn)  # counted before its thread starts, so a burst cannot slip past
            if full:  # idle clients must not pile up threads: refuse the extra one, say why
                _refuse(conn, f"error: busy: {MAX_CLIENTS} connections already open")
                continue
            self._spawn(self._serve, "sim-button-client", conn)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(CLIENT_IDLE_S)
        too_long = f"error: line longer than {MAX_LINE_BYTES} bytes".encode() + b"\n"
        buffer = b""
        skipping = False  # inside an over-long line: drop bytes until its end, then answer once
        with conn:
            try:
                while not self._stop.is_set():
                    chunk = conn.recv(4096)
                    if not chunk:
                        if skipping:
                            conn.sendall(too_long)
                        elif buffer.strip():  # a last command without its newline
                            conn.sendall((answer(buffer.rstrip(b"\r"), self._on_press, self._waiter) + "\n").encode())
                        return
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        if skipping or len(line) > MAX_LINE_BYTES:
                            skipping = False
                            conn.sendall(too_long)
                        else:
                            conn.sendall((answer(line.rstrip(b"\r"), self._on_press, self._waiter) + "\n").encode())
                    if len(buffer) > MAX_LINE_BYTES:
                        skipping, buffer = True, b""
            except OSError:
                return  # client went away, idled out or we are closing
            finally:
                with self._clients_lock:
                    self._clients.discard(conn)

    def _stdin_loop(self) -> None:
        stream = self._stdin_stream if self._stdin_stream is not None else sys.stdin
        if stream is None:
            return
        try:
            for line in stream:
                if self._stop.is_set():
                    return
                command = line.strip().lower()
                if command == "":
                    self._deliver(Press.SHORT)
                elif command in ("l", "long"):
                    self._deliver(Press.LONG)
                else:
                    print("press Enter for a short press, or l then Enter for a long press", file=sys.stderr)
        except (OSError, ValueError):
            return  # stdin closed under us

    def _deliver(self, press: Press) -> None:
        try:
            self._on_press(press)
        except Exception:
            log.exception("button handler failed on a simulated %s press", press.value)

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)
            server.close()
        with self._clients_lock:
            for conn in self._clients:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        path = self.socket_path
        if path is not None and self._socket_ino is not None:
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_ino == self._socket_ino:  # never remove another instance's socket
                    path.unlink()
        for thread in self._threads:
            if thread.name != "sim-button-stdin":  # a blocked read of stdin cannot be interrupted
                thread.join(timeout=1.0)


def _remove_stale_socket(path: Path) -> None:
    """A socket file left by a crashed run is replaced; a live one or a non-socket file is not."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ApplianceError(f"{path} exists and is not a socket: remove it or choose another socket path")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink(missing_ok=True)  # nobody listening: stale
        return
    finally:
        probe.close()
    raise ApplianceError(f"another appliance is already listening at {path}: stop it first")


def send_command(socket_path: Path, command: str, timeout: float = 5.0) -> str:
    """Send one command line to a running simulated appliance and return its answer line."""
    path = Path(socket_path)
    not_running = f"no appliance listening at {path}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise ApplianceNotRunning(not_running) from None
        except PermissionError:
            raise ApplianceError(f"not allowed to use {path}: run as the user that runs the appliance") from None
        except OSError as exc:
            raise ApplianceNotRunning(f"{not_running} ({exc.strerror or exc})") from None
        try:
            sock.sendall(command.encode("utf-8") + b"\n")
            reply = b""
            while b"\n" not in reply:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
        except TimeoutError:
            raise ApplianceError(f"the appliance at {path} did not answer within {timeout:g} s") from None
        except OSError as exc:
            raise ApplianceError(f"lost the connection to the appliance at {path} ({exc.strerror or exc})") from None
    if not reply:
        raise ApplianceError(f"the appliance at {path} closed the connection without answering")
    return reply.split(b"\n", 1)[0].decode("utf-8", errors="replace")


def send_press(socket_path: Path, long: bool = False, timeout: float = 5.0, wait: bool = False) -> str:
    """Press the simulated button of a running appliance; returns its answer ("ok").

    With ``wait`` the answer comes once the appliance has handled the press (up to
    ``timeout`` seconds) and describes the outcome.
    """
    command = "long" if long else "press"
    if wait:
        command += f" wait {timeout:g}"
        timeout += 2.0  # the appliance answers when its own wait runs out; leave it time to say so
    return send_command(socket_path, command, timeout)
