"""The collector's HTTP API and page as one small WSGI application (no framework: a handful of routes).

Order of checks on a batch: token (401), the device's request budget (429 + Retry-After),
size (413 + the limit, before the body is read), JSON and records (400 naming each refused
record), then one transaction. Every API reply carries `Server-Timing: app;dur=<ms>`, the
collector's own time, which the load test reports.

A full photo (PUT protocol.PHOTOS_PATH + sha256): token (401), budget (429), the name (404),
size (411/413, before the body is read), JPEG (400), sha256 of the body (400), then one of this
device's records must name it (404), base may have it already (200 duplicate, from any device),
the device's quota (507), and only then is the file written and its row committed (201).

AUTH_PATH answers from the headers alone (204 or 401, no request budget taken): nginx's
auth_request asks it before reading a request's body, so a stranger's 16 MiB is never read.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from leaf_collector import fieldfigures, labelling, labelweb
from leaf_collector.db import CollectorDB, DatabaseUnavailable, ForeignIds
from leaf_collector.fieldphotos import NOT_WANTED, OVER_QUOTA
from leaf_collector.page import csv_stream, render_page
from leaf_collector.photostore import PhotoStore, PhotoStoreError
from leaf_collector.ratelimit import RateLimiter
from leaf_collector.records import BadBatch, parse_batch
from leaf_wire import protocol

log = logging.getLogger("leaf_collector")

StartResponse = Callable[..., Any]
Headers = list[tuple[str, str]]

_PHOTO = re.compile(r"/photos/([0-9a-fA-F-]{36})/(thumbnail|photo)\.jpg")
_PAGE_HEADERS: Headers = [
    (
        "Content-Security-Policy",
        "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
]
_RETRY_DB_S = 30
_RETRY_PHOTO_STORE_S = 600  # a full disk needs a person: do not come back every few seconds
_SHA256 = re.compile(r"[0-9a-f]{64}")
_JPEG_MAGIC = b"\xff\xd8\xff"
AUTH_PATH = "/api/v1/auth"  # for the reverse proxy (leaf_collector/nginx.py), not for devices


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int = protocol.DEFAULT_MAX_REQUEST_BYTES
    rate_per_minute: float = 120.0
    burst: int = 30
    page_days: int = 30
    page_latest: int = 50
    photo_quota_mb: int = 2048  # a device's full photos at base, unless `leaf-collector device quota` says otherwise


class _Reply(Exception):
    """A finished response raised from deep in a handler (errors mostly)."""

    def __init__(self, status: str, body: dict[str, Any], headers: Headers | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or []


class CollectorApp:
    def __init__(self, db: CollectorDB, limits: Limits | None = None, *, photos: PhotoStore) -> None:
        self.db = db
        self.limits = limits or Limits()
        self.photos = photos
        self.rate = RateLimiter(self.limits.rate_per_minute, self.limits.burst)
        self.labelling = labelweb.LabelWeb(db, photos)  # sign-in and the labelling pages

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "") or "/"
        try:
            if path.startswith("/api/"):
                return self._api(environ, start_response, method, path, started)
            if labelweb.handles(path):
                return self.labelling(environ, start_response, method, path)
            return self._page(environ, start_response, method, path)
        except Exception:
            log.exception("unexpected error on %s %s", method, path)
            return _json(start_response, "500 Internal Server Error", {"error": "internal error (see the log)"})

    # ---- API -----------------------------------------------------------------------------

    def _api(
        self, environ: dict[str, Any], start_response: StartResponse, method: str, path: str, started: float
    ) -> Iterable[bytes]:
        try:
            if path == protocol.API_PATH:
                _allow(method, "POST")
                status, body = self._receive(environ)
            elif path == AUTH_PATH:  # any method: nginx's subrequest keeps the original one
                device = self._token_owner(environ)
                start_response("204 No Content", [("X-Leaf-Device", device), ("Cache-Control", "no-store")])
                return []
            elif path == protocol.WHOAMI_PATH:
                _allow(method, "GET", "HEAD")
                device = self._authenticate(environ)
                usage = self.db.photo_usage(device, self.limits.photo_quota_mb)
                status, body = (
                    "200 OK",
                    {
                        "device_id": device,
                        "max_request_bytes": self.limits.max_request_bytes,
                        "max_records": protocol.MAX_RECORDS_PER_BATCH,
                        "photo_quota_bytes": usage.quota_bytes,
                        "photo_used_bytes": usage.used_bytes,
                    },
                )
            elif path.startswith(protocol.PHOTOS_PATH):
                _allow(method, "PUT", "HEAD")
                status, body = self._field_photo(environ, method, path[len(protocol.PHOTOS_PATH) :])
            else:
                raise _Reply("404 Not Found", {"error": f"no API at {path}"})
            headers: Headers = []
        except _Reply as reply:
            status, body, headers = reply.status, reply.body, reply.headers
        except DatabaseUnavailable as exc:
            log.error("database unavailable: %s", exc)
            status, body = "503 Service Unavailable", {"error": "the database is unavailable; retry later"}
            headers = [("Retry-After", str(_RETRY_DB_S))]
        elapsed = (time.perf_counter() - started) * 1000.0
        headers.append(("Server-Timing", f"app;dur={elapsed:.1f}"))
        return _json(start_response, status, body, headers)

    def _authenticate(self, environ: dict[str, Any]) -> str:
        """The token's device, within its request budget (else 401 or 429)."""
        device = self._token_owner(environ)
        wait = self.rate.take(device)
        if wait:
            raise _Reply(
                "429 Too Many Requests",
                {"error": f"too many requests from {device}; retry in {wait:.0f} s"},
                [("Retry-After", f"{wait:.0f}")],
            )
        return device

    def _token_owner(self, environ: dict[str, Any]) -> str:
        scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        challenge = [("WWW-Authenticate", 'Bearer realm="leaf-collector"')]
        if scheme.lower() != "bearer" or not token.strip():
            raise _Reply(
                "401 Unauthorized", {"error": "send the device's token as 'Authorization: Bearer ...'"}, challenge
            )
        device = self.db.device_for_token(token.strip())
        if device is None:
            raise _Reply("401 Unauthorized", {"error": "unknown or revoked token"}, challenge)
        return device

    def _receive(self, environ: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        device = self._authenticate(environ)
        body = self._body(environ, "batch", ": send fewer records")
        try:
            records, errors = parse_batch(body, device)
        except BadBatch as exc:
            raise _Reply("400 Bad Request", {"error": str(exc)}) from None
        if errors:
            log.warning(
                "%s: refused a batch: %d of %d records invalid", device, len(errors), len(errors) + len(records)
            )
            raise _Reply(
                "400 Bad Request",
                {
                    "error": f"{len(errors)} of {len(errors) + len(records)} records refused; nothing was stored",
                    "errors": [e.to_json() for e in errors],
                },
            )
        try:
            result = self.db.store_batch(
                device, records, photos=self.photos, default_quota_mb=self.limits.photo_quota_mb
            )
        except ForeignIds as exc:
            raise _Reply(
                "400 Bad Request",
                {"error": f"{exc}; nothing was stored", "errors": [e.to_json() for e in exc.errors]},
            ) from None
        except PhotoStoreError as exc:
            raise _photo_store_failed(device, exc) from None
        log.info("%s: %d records, %d stored, %d duplicates", device, len(records), result.stored, result.duplicates)
        if result.photos_over_quota:
            log.warning("%s: %d full photos of the batch not kept (photo quota full)", device, result.photos_over_quota)
        return "200 OK", {
            "results": [{"id": rid, "status": status} for rid, status in result.statuses],
            "stored": result.stored,
            "duplicates": result.duplicates,
        }

    def _field_photo(self, environ: dict[str, Any], method: str, name: str) -> tuple[str, dict[str, Any]]:
        """PUT or HEAD one full photo by its sha256 (the contract: leaf_wire/protocol.py, PHOTOS_PATH)."""
        device = self._authenticate(environ)
        if not _SHA256.fullmatch(name):
            raise _Reply("404 Not Found", {"error": "a photo is named by its sha256: 64 lower-case hex digits"})
        if method == "HEAD":
            if self.db.has_field_photo(device, name) and self.photos.has(name):
                return "200 OK", {"photo_sha256": name}
            raise _Reply("404 Not Found", {"error": "base has no such photo of this device", "photo_sha256": name})
        data = self._body(environ, "photo", "")
        if not data.startswith(_JPEG_MAGIC):
            raise _Reply("400 Bad Request", {"error": "the body is not a JPEG (it must start with FF D8 FF)"})
        actual = protocol.sha256_hex(data)
        if actual != name:
            raise _Reply(
                "400 Bad Request",
                {
                    "error": f"the body's sha256 is {actual}, not the one in the path "
                    f"(damaged in transit or on the device)"
                },
            )
        try:
            receipt = self.db.receive_field_photo(self.photos, device, name, data, self.limits.photo_quota_mb)
        except PhotoStoreError as exc:
            raise _photo_store_failed(device, exc) from None
        if receipt.status == NOT_WANTED:
            raise _Reply(
                "404 Not Found",
                {"error": "no record of this device names this photo: send the record first", "photo_sha256": name},
            )
        if receipt.status == OVER_QUOTA:
            raise _Reply(
                "507 Insufficient Storage",
                {
                    "error": f"this device's photo quota at base is full: {receipt.used_bytes} of "
                    f"{receipt.quota_bytes} bytes used, this photo is {len(data)}; try again another day",
                    "quota_bytes": receipt.quota_bytes,
                    "used_bytes": receipt.used_bytes,
                },
            )
        if receipt.status == protocol.STORED:
            log.info("%s: full photo %s… stored (%d bytes)", device, name[:12], len(data))
            return "201 Created", {"status": protocol.STORED}
        return "200 OK", {"status": protocol.DUPLICATE}

    def _body(self, environ: dict[str, Any], what: str, advice: str) -> bytes:
        limit = self.limits.max_request_bytes
        raw_length = environ.get("CONTENT_LENGTH") or ""
        if not raw_length.isdigit():
            raise _Reply("411 Length Required", {"error": "send a Content-Length header"})
        length = int(raw_length)
        if length > limit:
            raise _Reply(
                "413 Content Too Large",
                {
                    "error": f"the {what} is {length} bytes; at most {limit} are taken{advice}",
                    "max_bytes": limit,
                },
            )
        body = environ["wsgi.input"].read(length)
        if len(body) != length:
            raise _Reply("400 Bad Request", {"error": "the body ended before Content-Length bytes"})
        return body

    # ---- the page -----------------------------------------------------------------------

    def _page(self, environ: dict[str, Any], start_response: StartResponse, method: str, path: str) -> Iterable[bytes]:
        if method not in ("GET", "HEAD"):
            return _json(start_response, "405 Method Not Allowed", {"error": "read-only"}, [("Allow", "GET, HEAD")])
        try:
            if path == "/":
                return self._overview(environ, start_response)
            if path == protocol.HEALTH_PATH:
                self.db.ping()
                return _json(start_response, "200 OK", {"status": "ok"})
            if path == "/diagnoses.csv":
                return self._csv(start_response)
            match = _PHOTO.fullmatch(path)
            if match:
                return self._photo(environ, start_response, match.group(1), match.group(2))
        except DatabaseUnavailable as exc:
            log.error("database unavailable: %s", exc)
            return _text(start_response, "503 Service Unavailable", "The database is unavailable; try again shortly.\n")
        return _text(start_response, "404 Not Found", "Not found.\n")

    def _overview(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        days = self.limits.page_days
        if query.get("days", [""])[0].isdigit():
            days = max(1, min(3660, int(query["days"][0])))
        overview, latest = self.db.overview(days), self.db.latest(self.limits.page_latest)
        models = self.db.call(fieldfigures.models_on_fleet)
        html = render_page(overview, latest, days=days, now=_now(), models=models)
        data = html.encode("utf-8")
        headers = [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store"), *_PAGE_HEADERS]
        start_response("200 OK", [*headers, ("Content-Length", str(len(data)))])
        return [data]

    def _csv(self, start_response: StartResponse) -> Iterable[bytes]:
        rows = self.db.csv_rows()
        first = next(rows, None)  # a database failure shows here, while a status can still be sent
        name = f"leaf-diagnoses-{_now():%Y%m%d-%H%M}.csv"
        start_response(
            "200 OK",
            [
                ("Content-Type", "text/csv; charset=utf-8"),
                ("Content-Disposition", f'attachment; filename="{name}"'),
                ("Cache-Control", "no-store"),
                *_PAGE_HEADERS,
            ],
        )
        return csv_stream(_chain(first, rows))

    def _photo(self, environ: dict[str, Any], start_response: StartResponse, raw_id: str, kind: str) -> Iterable[bytes]:
        try:
            diagnosis_id = uuid.UUID(raw_id)
        except ValueError:
            return _text(start_response, "404 Not Found", "Not found.\n")
        if kind != "thumbnail":  # thumbnails stay public (the overview); a full photo is the labelling's rule
            refused = self.labelling.photo_refusal(
                environ, lambda device: self.db.call(labelling.device_may_see_diagnosis_photo, device, diagnosis_id)
            )
            if refused:
                return _text(start_response, *refused)
        try:
            data = self.db.photo(diagnosis_id, "thumbnail" if kind == "thumbnail" else "full", self.photos)
        except PhotoStoreError as exc:
            log.error("photo of diagnosis %s not served: %s", diagnosis_id, exc)
            return _text(
                start_response,
                "500 Internal Server Error",
                "This photo is damaged or unreadable at base; see the collector's log.\n",
            )
        if data is None:
            return _text(start_response, "404 Not Found", "No such photo.\n")
        start_response(
            "200 OK",
            [
                ("Content-Type", "image/jpeg"),
                ("Content-Length", str(len(data))),
                ("Cache-Control", "private, max-age=86400, immutable"),
                *_PAGE_HEADERS,
            ],
        )
        return [data]


def _photo_store_failed(device: str, exc: PhotoStoreError) -> _Reply:
    """The store's own words go to the log (they name base's folders); the device hears what to do."""
    log.error("%s: the photo store failed: %s", device, exc)
    return _Reply(
        "503 Service Unavailable",
        {
            "error": "base cannot keep photos right now (its photo store is full or failing); "
            "nothing was stored: send again later"
        },
        [("Retry-After", str(_RETRY_PHOTO_STORE_S))],
    )


def _chain(first: tuple[Any, ...] | None, rest: Iterable[tuple[Any, ...]]) -> Iterable[tuple[Any, ...]]:
    if first is not None:
        yield first
        yield from rest


def _now() -> datetime:
    return datetime.now(UTC)


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise _Reply(
            "405 Method Not Allowed", {"error": f"use {' or '.join(allowed)}"}, [("Allow", ", ".join(allowed))]
        )


def _json(
    start_response: StartResponse, status: str, body: dict[str, Any], headers: Headers | None = None
) -> list[bytes]:
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    start_response(
        status,
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-store"),
            *(headers or []),
        ],
    )
    return [data]


def _text(start_response: StartResponse, status: str, text: str) -> list[bytes]:
    data = text.encode("utf-8")
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))])
    return [data]
