"""The page's HTTP server: a few read-only endpoints and one press endpoint, on its own threads.

It never blocks the button loop: it reads attributes the loop sets, reads the store through its
reader connections (WAL: readers never wait for the writer) and presses by queueing, as the button does.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

from leaf_wire.addresses import is_loopback_host

from ..errors import ApplianceError
from ..led_codes import LED_CODES
from ..ports import Press
from .page import PAGE
from .watch import WatchedDisplay, WatchedLeds

log = logging.getLogger(__name__)

MAX_HANDLERS = 8  # requests served at once; more are refused (a phone polls twice a second)
SOCKET_TIMEOUT_S = 10.0
MAX_BODY_BYTES = 256
MAX_PHOTO_BYTES = 20_000_000
RECENT = 12
PRESS_HEADER = "X-Leaf-Press"  # a custom header: a cross-site form or image cannot send it (CSRF)
PIN_HEADER = "X-Leaf-Pin"
MAX_BAD_PINS = 5  # wrong PINs within BAD_PIN_WINDOW_S before presses from other machines pause
BAD_PIN_WINDOW_S = 60.0
_PHOTO = re.compile(r"/photo/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.jpg")


class History(Protocol):
    """What the page reads from the record store (SqliteStore has it)."""

    def recent(self, limit: int | None = 20) -> list[dict[str, Any]]: ...

    def get(self, record_id: str) -> dict[str, Any] | None: ...

    def photo_file(self, row_or_path: dict[str, Any] | str) -> Path: ...


class Appliance(Protocol):
    """The daemon as the page sees it (appliance.daemon.Appliance)."""

    state: Any
    fault: Any
    last_cycle: Any
    store: Any


def may_press(client: str, pin: str, given: str | None) -> bool:
    """The PIN rule: this machine may always press; others only with the configured PIN, never without one."""
    if is_loopback_host(client):
        return True
    return bool(pin) and given is not None and hmac.compare_digest(pin.encode(), given.encode())


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host, int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 16

    def __init__(self, address: tuple[str, int], page: WebPage) -> None:
        self.page = page
        self._slots = threading.BoundedSemaphore(MAX_HANDLERS)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):  # bounded threads: an extra request is closed at once
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class WebPage:
    """Binds at construction (so the banner can print the port), serves from start() until close()."""

    def __init__(self, listen: str, pin: str, display: WatchedDisplay, leds: WatchedLeds) -> None:
        self.pin = pin
        self.display, self.leds = display, leds
        self.app: Appliance | None = None
        self.on_press: Callable[[Press], object] | None = None
        host, port = parse_listen(listen)
        try:
            self._server = _Server((host, port), self)
        except OSError as exc:
            raise ApplianceError(
                f"cannot serve the web page on {listen}: {exc.strerror or exc}; set [web] listen to a free port "
                "or [web] enabled = false"
            ) from None
        self._thread: threading.Thread | None = None
        self._bad_pins: deque[float] = deque(maxlen=MAX_BAD_PINS)
        self._pin_lock = threading.Lock()

    def allowed(self, client: str, given: str | None) -> bool:
        """may_press, with guessing slowed: after MAX_BAD_PINS wrong PINs in a minute no PIN works for a while."""
        if may_press(client, "", None):
            return True
        with self._pin_lock:
            now = time.monotonic()
            locked = len(self._bad_pins) == MAX_BAD_PINS and now - self._bad_pins[0] < BAD_PIN_WINDOW_S
            if locked:
                return False
            ok = may_press(client, self.pin, given)
            if not ok and given:
                self._bad_pins.append(now)
            return ok

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        shown = "127.0.0.1" if host == "0.0.0.0" else host
        return f"http://{shown}:{port}/"

    def attach(self, app: Appliance) -> None:
        self.app = app

    def start(self, on_press: Callable[[Press], object]) -> None:
        self.on_press = on_press
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.2,), name="web-page", daemon=True)
        self._thread.start()
        log.info("web page at %s", self.url)

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()

    # ----- what the endpoints answer -------------------------------------------------------
    def state(self, can_press: bool) -> dict[str, Any]:
        app = self.app
        pattern = self.leds.current
        code = LED_CODES[pattern]
        out: dict[str, Any] = {
            "state": str(getattr(app, "state", "starting")),
            "screen": self.display.seq,
            "leds": {"pattern": pattern.value, "colour": code.colour, "steps": code.steps, "meaning": code.meaning},
            "can_press": can_press,
            "fault": None,
            "last": None,
            "records": [],
        }
        if app is None:
            return out
        if app.fault is not None:
            out["fault"] = {"title": app.fault.title, "detail": app.fault.detail, "todo": app.fault.todo}
        cycle = app.last_cycle
        if cycle is not None:
            out["last"] = {"id": cycle.record_id, "verdict": cycle.verdict, "slug": cycle.slug, "error": cycle.error}
        store = app.store
        if store is not None:
            try:
                out["records"] = [_row(r) for r in store.recent(RECENT)]
            except Exception as exc:  # a damaged store shows as a fault on the screen; the page says so too
                out["records_error"] = str(exc)
        return out

    def photo(self, record_id: str) -> bytes | None:
        store = self.app.store if self.app is not None else None
        if store is None:
            return None
        row = store.get(str(uuid.UUID(record_id)))
        if row is None or not row.get("photo_path"):
            return None
        try:
            path = store.photo_file(row)
            with path.open("rb") as f:
                data = f.read(MAX_PHOTO_BYTES + 1)
        except (OSError, ValueError):
            return None
        return data if len(data) <= MAX_PHOTO_BYTES else None

    def press(self, press: Press) -> bool:
        """Queue a press as the button would; False: the appliance is still busy with the last one."""
        if self.on_press is None:
            return False
        return self.on_press(press) is not False


def _row(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": r.get("id"),
        "created_at": r.get("created_at"),
        "verdict": r.get("verdict"),
        "crop": r.get("crop") or "",
        "condition": r.get("condition") or "",
        "reason": r.get("reason") or "",
        "probability": r.get("top1_probability"),
        "photo": bool(r.get("photo_path")),
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = SOCKET_TIMEOUT_S
    protocol_version = "HTTP/1.1"
    server_version = "leaf-appliance"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.client_address[0], format % args)

    def _send(self, status: int, body: bytes, kind: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Connection", "close")  # an idle keep-alive would hold one of the few handler threads
        self.close_connection = True
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: object) -> None:
        self._send(status, json.dumps(value, ensure_ascii=False).encode(), "application/json; charset=utf-8")

    def _can_press(self) -> bool:
        return self.server.page.allowed(self.client_address[0], self.headers.get(PIN_HEADER))

    def do_GET(self) -> None:
        page = self.server.page
        path = self.path.split("?", 1)[0]
        if path == "/":
            csp = "default-src 'self'; img-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'"
            self._send(HTTPStatus.OK, PAGE.encode(), "text/html; charset=utf-8", {"Content-Security-Policy": csp})
        elif path == "/state.json":
            self._json(HTTPStatus.OK, page.state(self._can_press()))
        elif path == "/screen.png":
            png = page.display.png()
            if png is None:
                self._json(HTTPStatus.NOT_FOUND, {"error": "nothing shown yet"})
            else:
                self._send(HTTPStatus.OK, png[1], "image/png")
        elif match := _PHOTO.fullmatch(path):
            data = page.photo(match[1])
            if data is None:
                self._json(HTTPStatus.NOT_FOUND, {"error": "no such photo"})
            else:
                self._send(HTTPStatus.OK, data, "image/jpeg")
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})

    do_HEAD = do_GET

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            self.close_connection = True
            self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"at most {MAX_BODY_BYTES} bytes"})
            return
        body = self.rfile.read(int(length))
        path = self.path.split("?", 1)[0]
        if path != "/press":
            self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        if self.headers.get(PRESS_HEADER) != "1" or not self._same_origin():
            self._json(HTTPStatus.FORBIDDEN, {"error": f"presses come from the page (header {PRESS_HEADER})"})
            return
        if not self._can_press():
            self._json(HTTPStatus.FORBIDDEN, {"error": "read-only: this page needs the PIN to press"})
            return
        kind = body.decode("utf-8", "replace").strip().lower() or "short"
        press = {"short": Press.SHORT, "long": Press.LONG}.get(kind)
        if press is None:
            self._json(HTTPStatus.BAD_REQUEST, {"error": "press short or long"})
        elif self.server.page.press(press):
            self._json(HTTPStatus.ACCEPTED, {"ok": True, "press": press.value})
        else:
            self._json(HTTPStatus.CONFLICT, {"error": "busy: still working on the last press"})

    def _same_origin(self) -> bool:
        origin = self.headers.get("Origin")
        return origin is None or origin == f"http://{self.headers.get('Host', '')}"

    def handle(self) -> None:
        with contextlib.suppress(OSError, socket.timeout):
            super().handle()
