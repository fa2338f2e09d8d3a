"""The systemd notify protocol: readiness, status, stopping and a watchdog tied to a healthy main loop.

systemd runs the daemon as ``Type=notify`` with ``WatchdogSec=``: it waits for READY=1 and
restarts the service when WATCHDOG=1 stops arriving. The messages go through systemd-python
when it is installed (on the Pi) and through a small built-in sender otherwise, so a plain
venv behaves the same. Outside systemd (no NOTIFY_SOCKET) every call is a cheap no-op, and
a notification that cannot be delivered is logged, never raised: the appliance keeps working
for the farmer even when its supervisor cannot be told.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Literal

log = logging.getLogger(__name__)

Backend = Literal["auto", "systemd", "builtin"]


def send_builtin(message: str) -> bool:
    """Sends one datagram to $NOTIFY_SOCKET like sd_notify(3); False when the variable is not set."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # Linux abstract namespace
    elif not address.startswith("/"):
        raise OSError(f"unsupported NOTIFY_SOCKET address {address!r} (only Unix socket paths are supported)")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.sendto(message.encode("utf-8"), address)
    return True


def _systemd_sender() -> Callable[[str], bool] | None:
    try:
        from systemd import daemon
    except ImportError:
        return None
    return daemon.notify


class Notifier:
    """Tells systemd how the service is doing; every method is safe to call outside systemd."""

    def __init__(self, backend: Backend = "auto") -> None:
        if backend == "builtin":
            sender = None
        else:
            sender = _systemd_sender()
            if sender is None and backend == "systemd":
                raise ImportError("systemd-python is not installed (pip install systemd-python)")
        self._send: Callable[[str], bool] = sender or send_builtin
        self.backend: str = "systemd" if sender else "builtin"
        self._failure_logged = False
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether systemd is listening (NOTIFY_SOCKET is set)."""
        return bool(os.environ.get("NOTIFY_SOCKET"))

    def ready(self, status: str | None = None) -> None:
        """Start-up is complete: systemd marks the unit active and starts its watchdog clock."""
        self._notify("READY=1" if status is None else f"READY=1\n{_status_line(status)}")

    def status(self, text: str) -> None:
        """A one-line state shown by `systemctl status`."""
        self._notify(_status_line(text))

    def watchdog(self) -> None:
        self._notify("WATCHDOG=1")

    def stopping(self) -> None:
        self._notify("STOPPING=1")

    def watchdog_interval(self) -> float | None:
        """How often to send WATCHDOG=1 (half of WatchdogSec=), or None when this process has no watchdog."""
        try:
            usec = int(os.environ.get("WATCHDOG_USEC", ""))
        except ValueError:
            return None
        if usec <= 0:
            return None
        pid = os.environ.get("WATCHDOG_PID", "")
        if pid and pid != str(os.getpid()):
            return None
        return usec / 2 / 1_000_000

    def _notify(self, message: str) -> None:
        if not self.enabled:
            return
        try:
            with self._lock:  # the watchdog ticker and the main loop may notify at once
                self._send(message)
        except Exception as error:  # a supervisor we cannot reach must not stop the appliance
            if not self._failure_logged:
                self._failure_logged = True
                log.warning("cannot notify systemd via %s (%s); further failures are not logged", self.backend, error)
            else:
                log.debug("cannot notify systemd: %s", error)


def _status_line(text: str) -> str:
    return "STATUS=" + " ".join(text.splitlines())


class WatchdogGate:
    """Sends WATCHDOG=1 only while the main loop keeps calling ``kick()``.

    A background ticker pings systemd every ``interval / 2`` seconds, but only when the last
    kick is fresher than ``stale_after`` (default: ``interval``, i.e. half of WatchdogSec=).
    A hung main loop therefore stops the pings and systemd restarts the service, while a
    healthy one keeps it alive even if a single iteration is slow. Any step that can block
    longer than ``stale_after`` (a USB export) must kick while it works.
    """

    def __init__(
        self,
        notifier: Notifier,
        interval: float | None = None,
        *,
        stale_after: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._notifier = notifier
        self.interval = interval if interval is not None else notifier.watchdog_interval()
        self.stale_after = stale_after if stale_after is not None else self.interval
        self._clock = clock
        self._last_kick = clock()
        self._withholding = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        """Whether systemd expects pings from this process."""
        return self.interval is not None and self._notifier.enabled

    def kick(self) -> None:
        """Called by the main loop on every iteration: 'I am still making progress'."""
        self._last_kick = self._clock()

    @property
    def withholding(self) -> bool:
        """Whether the last tick found the loop stale and sent nothing."""
        return self._withholding

    def healthy(self) -> bool:
        return self.stale_after is not None and self._clock() - self._last_kick < self.stale_after

    def tick(self) -> bool:
        """One ticker step: pings when the loop is healthy; returns whether it pinged."""
        if self.healthy():
            if self._withholding:
                log.info("main loop is responsive again; watchdog pings resumed")
                self._withholding = False
            self._notifier.watchdog()
            return True
        if not self._withholding:
            self._withholding = True
            log.error(
                "main loop has not reported for %.1f s; withholding watchdog pings so systemd restarts the service",
                self._clock() - self._last_kick,
            )
        return False

    def start(self) -> bool:
        """Starts the ticker when systemd asked for a watchdog; returns whether it did."""
        if not self.active or self._thread is not None:
            return False
        assert self.interval is not None
        self.kick()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        assert self.interval is not None
        period = self.interval / 2
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(period)

    def __enter__(self) -> WatchdogGate:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
