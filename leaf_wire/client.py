"""The device's side of the collector API, on urllib alone (no extra package on the Pi; the load test uses it too).

Every failure is raised as a CollectorError subclass whose `summary` fits one line of the
ready screen and whose message says what to do. Redirects are refused: following one could
send the bearer token to another host, or over plain http.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import re
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from leaf_wire import protocol

MAX_RESPONSE_BYTES = 4 * 1024 * 1024
_SERVER_TIMING = re.compile(r"(?:^|,)\s*app\s*;\s*dur=([0-9.]+)")


class CollectorError(Exception):
    """A sync request failed; `summary` is the short form for the ready screen."""

    summary = "collector error"
    transient = True  # worth retrying later without anyone changing anything


class CollectorUnreachable(CollectorError):
    """No connection: no network, DNS failure, collector down. Nothing was sent."""

    summary = "offline"


class CollectorInterrupted(CollectorError):
    """The connection broke after the batch was sent; the collector may have stored it (a retry is safe)."""

    summary = "interrupted"


_CERT_TIME_CODES = (9, 10)  # X509_V_ERR_CERT_NOT_YET_VALID, X509_V_ERR_CERT_HAS_EXPIRED
EARLIEST_PLAUSIBLE_YEAR = 2024  # this software did not exist before: a clock showing earlier is wrong


def clock_problem(now: datetime | None = None) -> str:
    """Why this machine's clock cannot be right, or "" when it may be."""
    moment = now or datetime.now(UTC)
    if moment.year < EARLIEST_PLAUSIBLE_YEAR:
        return (
            f"this device's clock says {moment:%Y-%m-%d}, which cannot be right: let it reach a time server "
            f"(NTP) or fit a real-time clock, then sync again"
        )
    return ""


class CollectorTLSError(CollectorError):
    summary = "certificate not trusted"
    transient = False


class TokenRefused(CollectorError):
    summary = "token refused"
    transient = False


class CollectorBusy(CollectorError):
    """429 or 503: come back after `retry_after_s`."""

    summary = "collector busy"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class BatchTooLarge(CollectorError):
    """413: the request was bigger than the collector takes; `max_bytes` is its limit when it said so."""

    summary = "batch too large"

    def __init__(self, message: str, max_bytes: int | None) -> None:
        super().__init__(message)
        self.max_bytes = max_bytes


class RecordsRejected(CollectorError):
    """400 naming records the collector will not take; nothing of the batch was stored."""

    summary = "records refused"
    transient = False

    def __init__(self, message: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.errors = errors  # [{"index": int, "id": str | None, "reason": str}]


class PhotoTooLarge(BatchTooLarge):
    """413 on a full photo: larger than the collector takes at all (`max_bytes`); sending it again cannot help."""

    summary = "photo too large"
    transient = False


class PhotoQuotaFull(CollectorError):
    """507: this device's photo quota at base is full; try another day (or ask base to raise it)."""

    summary = "photo quota full"

    def __init__(self, message: str, quota_bytes: int | None, used_bytes: int | None) -> None:
        super().__init__(message)
        self.quota_bytes = quota_bytes
        self.used_bytes = used_bytes


class PhotoNotWanted(CollectorError):
    """404 on a full photo: no record of this device names it at base yet (send the record first)."""

    summary = "photo not wanted"
    transient = False


class PhotoRefused(CollectorError):
    """400 on a full photo: not a JPEG, or its bytes are not the ones its sha256 names (`reason` says which)."""

    summary = "photo refused"
    transient = False

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class CollectorInfo:
    device_id: str  # the device the token belongs to
    max_request_bytes: int | None  # the largest batch body it takes
    max_records: int | None
    photo_quota_bytes: int | None = None  # full photos this device may keep at base (None: an older collector)
    photo_used_bytes: int | None = None  # of which already used


@dataclass(frozen=True)
class PushReply:
    statuses: dict[str, str]  # id -> "stored" | "duplicate"
    request_ms: float  # as seen by the device
    server_ms: float | None  # the collector's own time (Server-Timing)

    @property
    def stored(self) -> int:
        return sum(1 for s in self.statuses.values() if s == protocol.STORED)

    @property
    def duplicates(self) -> int:
        return sum(1 for s in self.statuses.values() if s == protocol.DUPLICATE)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None  # urllib then raises HTTPError for the 3xx, handled below


def encode_record(record: dict[str, Any]) -> bytes:
    try:
        return json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except ValueError as exc:
        raise ValueError(f"diagnosis {record.get('id')} cannot be sent as JSON: {exc}") from exc


def encode_batch(encoded_records: list[bytes]) -> bytes:
    head = b'{"schema":%d,"records":[' % protocol.SCHEMA_VERSION
    return head + b",".join(encoded_records) + b"]}"


class CollectorClient:
    """One device's connection details; each call is one HTTP request (no state kept between calls)."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        ca_file: Path | None = None,
        timeout_s: float = 20.0,
        user_agent: str = "leaf-wire",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.base_url = url.rstrip("/")
        self._token = token
        self.timeout_s = timeout_s
        self.user_agent = user_agent
        self._clock = clock  # a Pi without network time or a clock battery thinks it is 1970
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if self.base_url.startswith("https://"):
            context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self._opener = urllib.request.build_opener(*handlers)

    # ---- calls -------------------------------------------------------------------------

    def whoami(self) -> CollectorInfo:
        """Who the collector thinks this token is, and its limits (checks address, TLS and token, sends no data)."""
        body, _, _ = self._request("GET", protocol.WHOAMI_PATH, None)
        device = body.get("device_id") if isinstance(body, dict) else None
        if not isinstance(device, str):
            raise CollectorError(f"the collector at {self.base_url} gave an answer without a device_id: {body!r:.200}")
        limit = body.get("max_request_bytes")
        records = body.get("max_records")
        return CollectorInfo(
            device_id=device,
            max_request_bytes=limit if isinstance(limit, int) and limit > 0 else None,
            max_records=records if isinstance(records, int) and records > 0 else None,
            photo_quota_bytes=_count(body.get("photo_quota_bytes")),
            photo_used_bytes=_count(body.get("photo_used_bytes")),
        )

    def push(self, records: list[dict[str, Any]]) -> PushReply:
        return self.push_encoded([str(r["id"]) for r in records], [encode_record(r) for r in records])

    def push_encoded(self, ids: list[str], encoded_records: list[bytes]) -> PushReply:
        """Send one batch; returns the acknowledgement of every id, or raises (then nothing may be marked)."""
        started = time.perf_counter()
        body, headers, _ = self._request("POST", protocol.API_PATH, encode_batch(encoded_records))
        request_ms = (time.perf_counter() - started) * 1000.0
        statuses = self._statuses(body, ids)
        return PushReply(statuses, request_ms, _server_ms(headers))

    def put_photo(self, sha256: str, data: bytes) -> str:
        """Send one full photo after its record; protocol.STORED or protocol.DUPLICATE, both meaning base has it.

        Raises PhotoNotWanted, PhotoRefused, PhotoQuotaFull, PhotoTooLarge or the usual CollectorErrors.
        """
        path = protocol.PHOTOS_PATH + _photo_name(sha256)
        body, _, _ = self._request("PUT", path, data, content_type="image/jpeg", photo=True)
        status = body.get("status") if isinstance(body, dict) else None
        if status not in (protocol.STORED, protocol.DUPLICATE):
            raise CollectorError(f"the collector's reply to a photo has no stored/duplicate status: {str(body)[:200]}")
        return status

    def has_photo(self, sha256: str) -> bool:
        """Whether base has this photo of this device (HEAD; a photo no record of this device names: False)."""
        try:
            self._request("HEAD", protocol.PHOTOS_PATH + _photo_name(sha256), None, photo=True)
        except PhotoNotWanted:
            return False
        return True

    # ---- plumbing ----------------------------------------------------------------------

    def _statuses(self, body: Any, ids: list[str]) -> dict[str, str]:
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            raise CollectorError(f"the collector's reply has no results list: {str(body)[:200]}")
        sent = set(ids)
        statuses: dict[str, str] = {}
        for item in results:
            rid = item.get("id") if isinstance(item, dict) else None
            status = item.get("status") if isinstance(item, dict) else None
            if rid in sent and status in (protocol.STORED, protocol.DUPLICATE):
                statuses[rid] = status
        return statuses

    def _request(
        self,
        method: str,
        path: str,
        data: bytes | None,
        *,
        content_type: str = "application/json",
        photo: bool = False,
    ) -> tuple[Any, http.client.HTTPMessage, int]:
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("Accept", "application/json")
        request.add_header("User-Agent", self.user_agent)
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                if method == "HEAD":
                    return None, response.headers, response.status
                raw = response.read(MAX_RESPONSE_BYTES + 1)
                return self._json(raw, response.status), response.headers, response.status
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc, photo=photo) from None
        except urllib.error.URLError as exc:
            raise self._connection_error(exc.reason, sent=False) from None
        except (OSError, http.client.HTTPException) as exc:
            # urllib wraps errors while sending; these came while waiting for or reading the reply.
            raise self._connection_error(exc, sent=True) from None

    def _json(self, raw: bytes, status: int) -> Any:
        if len(raw) > MAX_RESPONSE_BYTES:
            raise CollectorError(f"the collector's reply (HTTP {status}) is larger than {MAX_RESPONSE_BYTES} bytes")
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise CollectorError(
                f"{self.base_url} answered HTTP {status} with something that is not JSON ({raw[:80]!r}); "
                f"check that sync.url is the collector's address"
            ) from None

    def _connection_error(self, reason: object, *, sent: bool) -> CollectorError:
        where = self.base_url
        if isinstance(reason, ssl.SSLCertVerificationError):
            if reason.verify_code in _CERT_TIME_CODES and (clock := clock_problem(self._clock())):
                # A Pi without network time or a clock battery boots in 1970: every certificate looks
                # "not yet valid", and a CA file would not help.
                return CollectorTLSError(f"cannot check the TLS certificate of {where}: {clock}")
            return CollectorTLSError(
                f"the TLS certificate of {where} is not trusted ({reason.verify_message}); if the collector uses "
                f"its own CA, put that CA's PEM file in sync.ca_file"
            )
        if isinstance(reason, ssl.SSLError):
            return CollectorTLSError(f"TLS with {where} failed: {reason}")
        if isinstance(reason, socket.gaierror):
            return CollectorUnreachable(f"cannot resolve the collector's host name ({where}): {reason.strerror}")
        if isinstance(reason, ConnectionRefusedError):
            return CollectorUnreachable(f"{where} refused the connection (is the collector running?)")
        if isinstance(reason, TimeoutError | socket.timeout):
            kind = CollectorInterrupted if sent else CollectorUnreachable
            return kind(f"no answer from {where} within {self.timeout_s:g} s")
        if sent or isinstance(reason, ConnectionResetError | BrokenPipeError | http.client.HTTPException):
            return CollectorInterrupted(
                f"the connection to {where} broke before its reply arrived ({_describe(reason)}); "
                f"whatever was not acknowledged is sent again next time (the collector keeps one copy)"
            )
        return CollectorUnreachable(f"cannot reach {where}: {_describe(reason)}")

    def _http_error(self, exc: urllib.error.HTTPError, *, photo: bool = False) -> CollectorError:
        code = exc.code
        try:
            raw = exc.read(MAX_RESPONSE_BYTES + 1)
        except (OSError, http.client.HTTPException):
            raw = b""
        try:
            body = json.loads(raw.decode("utf-8")) if raw else {}
        except (UnicodeDecodeError, json.JSONDecodeError):
            body = {}
        said = body.get("error") if isinstance(body, dict) else None
        said = said if isinstance(said, str) else (raw[:120].decode("utf-8", "replace").strip() or exc.reason)
        if 300 <= code < 400:
            target = exc.headers.get("Location", "?")
            return CollectorError(
                f"{self.base_url} redirects (HTTP {code}) to {target}; redirects are not followed (they could "
                f"leak the token): set sync.url to the collector's own address"
            )
        if code in (401, 403):
            return TokenRefused(
                f"the collector refused this device's token (HTTP {code}: {said}); issue a new one with "
                f"`leaf-collector token issue DEVICE_ID` and put it in the token file"
            )
        if photo and (refusal := self._photo_error(code, body, said)):
            return refusal
        if code == 413:
            limit = body.get("max_bytes") if isinstance(body, dict) else None
            return BatchTooLarge(f"the collector refused the batch as too large: {said}", limit)
        if code in (429, 503):
            wait = _retry_after(exc.headers.get("Retry-After"))
            return CollectorBusy(f"the collector asked to retry in {wait:g} s (HTTP {code}: {said})", wait)
        if code == 400 and isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
            errors = [e for e in body["errors"] if isinstance(e, dict)]
            return RecordsRejected(f"the collector refused {len(errors)} record(s): {said}", errors)
        return CollectorError(f"the collector answered HTTP {code}: {said}")

    def _photo_error(self, code: int, body: Any, said: str) -> CollectorError | None:
        """The replies only a photo upload gets (leaf_wire/protocol.py, PHOTOS_PATH); None: the general ones apply."""
        fields = body if isinstance(body, dict) else {}
        if code == 404 and fields and "photo_sha256" not in fields:  # a collector from before issue 13
            return CollectorError(
                f"the collector at {self.base_url} takes no full photos ({said}); it is older than this device: "
                f"update the collector"
            )
        if code == 404:  # a HEAD's 404 has no body
            return PhotoNotWanted(f"the collector does not take this photo: {said}")
        if code == 400:
            return PhotoRefused(f"the collector refused the photo: {said}", said)
        if code == 413:
            limit = _count(fields.get("max_bytes"))
            return PhotoTooLarge(f"the collector refused the photo as too large: {said}", limit)
        if code == 507:
            quota, used = _count(fields.get("quota_bytes")), _count(fields.get("used_bytes"))
            return PhotoQuotaFull(f"this device's photo quota at base is full: {said}", quota, used)
        return None


def _photo_name(sha256: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError(f"a photo is named by the sha256 of its bytes (64 lower-case hex digits), not {sha256!r:.80}")
    return sha256


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _retry_after(value: str | None, default: float = 30.0) -> float:
    if not value:
        return default
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _server_ms(headers: http.client.HTTPMessage) -> float | None:
    match = _SERVER_TIMING.search(headers.get("Server-Timing", "") or "")
    return float(match.group(1)) if match else None


def _describe(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__
