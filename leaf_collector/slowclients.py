"""Hostile slow clients: many connections that send a request line, then one header line every few seconds.

This is the attack that locked every device out of a bare waitress (issue 11): each trickle
resets waitress's channel timeout and the connections fill its connection limit, so a real
request is never read. The load test and the tests hold these connections open against the
public port, reopen any the server closes (a patient attacker does), and count what happened.
One thread serves them all, so a few hundred cost the test almost nothing.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from dataclasses import dataclass


@dataclass
class SlowCounts:
    """What the slow clients saw: `closed_by_server` is how often the server hung up on one."""

    wanted: int
    open_now: int = 0
    open_peak: int = 0
    opened: int = 0
    closed_by_server: int = 0
    answered: int = 0  # of those closed, how many got a reply first (waitress and nginx just hang up)
    connect_failures: int = 0
    trickles_sent: int = 0


class SlowClients:
    """`with SlowClients(host, port, 500): ...` keeps 500 half-sent requests open until the block ends."""

    def __init__(
        self,
        host: str,
        port: int,
        count: int,
        *,
        interval_s: float = 3.0,
        reopen: bool = True,
        path: str = "/api/v1/diagnoses",
    ) -> None:
        self.host, self.port, self.interval_s, self.reopen = host, port, interval_s, reopen
        self.request_line = f"POST {path} HTTP/1.1\r\nHost: {host}\r\n".encode("ascii")
        self.counts = SlowCounts(wanted=count)
        self._socks: dict[socket.socket, float] = {}  # socket -> when its next trickle is due
        self._selector = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="slow-clients", daemon=True)

    # ---- life cycle ----------------------------------------------------------------------

    def start(self, ready_timeout_s: float = 60.0) -> SlowClients:
        """Opens the connections; returns once all are open (or the timeout passed: see counts)."""
        self._thread.start()
        self._ready.wait(ready_timeout_s)
        return self

    def stop(self) -> SlowCounts:
        """Closes them all (once; a second call only returns the counts)."""
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join(30)
            for sock in list(self._socks):
                self._drop(sock)
            self._selector.close()
        return self.snapshot()

    def __enter__(self) -> SlowClients:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def snapshot(self) -> SlowCounts:
        with self._lock:
            return SlowCounts(**vars(self.counts))

    # ---- the loop ------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._top_up()
            if len(self._socks) >= self.counts.wanted or not self.reopen:
                self._ready.set()
            now = time.monotonic()
            for sock, due in list(self._socks.items()):
                if due <= now:
                    self._trickle(sock, now)
            for key, _ in self._selector.select(timeout=0.2):
                self._on_readable(key.fileobj)  # type: ignore[arg-type]

    def _top_up(self) -> None:
        if self.counts.opened >= self.counts.wanted and not self.reopen:
            return
        started = time.monotonic()
        while len(self._socks) < self.counts.wanted and time.monotonic() - started < 0.5:
            try:
                sock = socket.create_connection((self.host, self.port), timeout=2)
                sock.sendall(self.request_line)
            except OSError:
                with self._lock:
                    self.counts.connect_failures += 1
                return
            sock.setblocking(False)
            self._socks[sock] = time.monotonic() + self.interval_s
            self._selector.register(sock, selectors.EVENT_READ)
            with self._lock:
                self.counts.opened += 1
                self.counts.open_now = len(self._socks)
                self.counts.open_peak = max(self.counts.open_peak, self.counts.open_now)

    def _trickle(self, sock: socket.socket, now: float) -> None:
        try:
            sock.send(f"X-Slow-{self.counts.trickles_sent % 1000}: a\r\n".encode("ascii"))
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._closed(sock, answered=False)
            return
        self._socks[sock] = now + self.interval_s
        with self._lock:
            self.counts.trickles_sent += 1

    def _on_readable(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        self._closed(sock, answered=bool(data))

    def _closed(self, sock: socket.socket, *, answered: bool) -> None:
        """The server answered (an error such as 408) or hung up: this connection is over."""
        self._drop(sock)
        with self._lock:
            self.counts.closed_by_server += 1
            self.counts.answered += int(answered)
            self.counts.open_now = len(self._socks)

    def _drop(self, sock: socket.socket) -> None:
        if sock in self._socks:
            del self._socks[sock]
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)
        sock.close()
