"""Shared by the labelling tests: field photos at base, accounts, and a tiny HTTP client that keeps cookies."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from leaf_wire import protocol
from tests.helpers.collector import PHOTOS, call, record


def field_photo(n: int) -> tuple[str, bytes]:
    """A distinct real JPEG per n (bytes after the end marker change the checksum, not the picture)."""
    data = PHOTOS[n % len(PHOTOS)] + bytes([n % 256]) * (1 + n // len(PHOTOS))
    return hashlib.sha256(data).hexdigest(), data


def add_field_photo(server, dsn: str, token: str, device_id: str, n: int, **changes: Any) -> dict[str, Any]:
    """A record naming a full photo, stored through the batch API, and the photo kept at base."""
    from leaf_collector.db import connect

    sha, data = field_photo(n)
    if changes.get("top1_slug") and "topk" not in changes:  # the device's first choice heads its top-k
        changes["topk"] = [{"slug": changes["top1_slug"], "probability": changes.get("top1_probability", 0.91)}]
    row = record(device_id, n, photo_sha256=sha, photo_bytes=len(data), **changes)
    status, _, body = call(server.url + protocol.API_PATH, json.dumps(protocol.batch([row])).encode(), token)
    assert status == 200, body
    server.app.photos.put(sha, data)
    with connect(dsn) as conn:
        conn.execute(
            "INSERT INTO field_photos (sha256, bytes, device_id) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (sha, len(data), device_id),
        )
    return {**row, "sha": sha, "data": data}


def add_account(dsn: str, username: str, password: str = "correct horse battery") -> None:
    from leaf_collector import accounts
    from leaf_collector.db import connect

    with connect(dsn) as conn:
        accounts.create(conn, username, password)


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def cookies(self) -> dict[str, str]:
        """Set-Cookie lines by cookie name (the whole line, flags included)."""
        return {line.split("=", 1)[0]: line for line in self.headers.get_all("Set-Cookie") or []}


@dataclass
class Browser:
    """Cookies kept like a browser keeps them (no expiry or path rules beyond Max-Age=0), redirects not followed."""

    base: str
    jar: dict[str, str] = field(default_factory=dict)
    csrf: str = ""

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ) -> Reply:
        parts = urlsplit(self.base)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)
        sent = dict(headers or {})
        if self.jar:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.jar.items())
        body = None
        if form is not None:
            body = urlencode(form).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            reply = Reply(response.status, response.headers, response.read())
        finally:
            conn.close()
        for name, line in reply.cookies().items():
            value = line.split("=", 1)[1].split(";", 1)[0]
            if "Max-Age=0" in line:
                self.jar.pop(name, None)
            else:
                self.jar[name] = value
        return reply

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, form: dict[str, str], **kw: Any) -> Reply:
        return self.request("POST", path, form, **kw)

    def login(self, username: str, password: str = "correct horse battery", **kw: Any) -> Reply:
        form_page = self.get("/login")
        token = hidden_csrf(form_page.text)
        reply = self.post("/login", {"csrf": token, "username": username, "password": password}, **kw)
        if reply.status == 303:
            self.csrf = hidden_csrf(self.get("/label").text)
        return reply

    def label(self, sha: str, label: str, *, background: str = "", chosen: str = "", **kw: Any) -> Reply:
        """POST the queue's form: a quick button's `label`, or "" with the select's `chosen` class."""
        form = {"csrf": self.csrf, "label": label, "background": background, "class": chosen}
        return self.post(f"/label/{sha}", form, **kw)


def hidden_csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def labels(dsn: str) -> list[tuple[str, str, str]]:
    from leaf_collector.db import connect

    with connect(dsn) as conn:
        return [tuple(r) for r in conn.execute("SELECT photo_sha256, username, label FROM labels ORDER BY 1, 2")]


def backgrounds(dsn: str) -> list[tuple[str, str, str | None]]:
    """(photo, who, background) for every label: None where the labeller did not say."""
    from leaf_collector.db import connect

    with connect(dsn) as conn:
        return [tuple(r) for r in conn.execute("SELECT photo_sha256, username, background FROM labels ORDER BY 1, 2")]
