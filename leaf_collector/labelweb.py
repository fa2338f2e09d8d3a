"""Sign-in, sign-out and the labelling pages: the collector's only routes that change anything.

The read-only overview, CSV and thumbnails stay public; these routes need a session. Full
field photos need a session or the bearer token of a device that sent a record naming the
photo, so a photo URL is worth nothing to someone who only guessed or copied it. A device
token never signs anyone in: only the session cookie and its CSRF token authorise a label.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from leaf_collector import accounts, labelling, labelpages
from leaf_collector.accounts import Session
from leaf_collector.db import CollectorDB, DatabaseUnavailable
from leaf_collector.loginlimit import LoginThrottle
from leaf_collector.photostore import PhotoStore
from leaf_collector.websession import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    FormError,
    client_address,
    cookies,
    cross_origin,
    read_form,
    same_token,
    set_cookie,
)

log = logging.getLogger("leaf_collector")

StartResponse = Callable[..., Any]
Headers = list[tuple[str, str]]

PAGE_HEADERS: Headers = [
    (
        "Content-Security-Policy",
        "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    # not no-referrer (the overview's): under it a browser sends "Origin: null" with the form's POST,
    # which cannot be told from a sandboxed attacker; same-origin keeps the real Origin for our forms
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
]
_LABEL_PHOTO = re.compile(r"/label/photos/([0-9a-f]{64})\.jpg")
_LABEL_ONE = re.compile(r"/label/([0-9a-f]{64})")
_QUEUE_SIZE = 30


def handles(path: str) -> bool:
    return path in ("/login", "/logout", "/label") or path.startswith("/label/")


class _Stop(Exception):
    """A finished page raised from a check (refusals)."""

    def __init__(self, status: str, html: str, headers: Headers | None = None) -> None:
        super().__init__(status)
        self.status, self.html, self.headers = status, html, headers or []


class LabelWeb:
    def __init__(self, db: CollectorDB, photos: PhotoStore, throttle: LoginThrottle | None = None) -> None:
        self.db = db
        self.photos = photos
        self.throttle = throttle or LoginThrottle()

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse, method: str, path: str
    ) -> Iterable[bytes]:
        try:
            return self._route(environ, start_response, method, path)
        except _Stop as stop:
            return _html(start_response, stop.status, stop.html, stop.headers)
        except DatabaseUnavailable as exc:
            log.error("database unavailable: %s", exc)
            page = labelpages.message_page(
                "Unavailable", "The database is unavailable; try again shortly.", link="/label", link_text="Try again"
            )
            return _html(start_response, "503 Service Unavailable", page, [("Retry-After", "30")])

    def _route(self, environ: dict[str, Any], start_response: StartResponse, method: str, path: str) -> Iterable[bytes]:
        reading = method in ("GET", "HEAD")
        if path == "/login":
            _allow(method, "GET", "HEAD", "POST")
            return self._login_form(environ, start_response) if reading else self._login(environ, start_response)
        if path == "/logout":
            _allow(method, "POST")
            return self._logout(environ, start_response)
        photo = _LABEL_PHOTO.fullmatch(path)
        if photo:
            _allow(method, "GET", "HEAD")
            sha = photo.group(1)
            refused = self.photo_refusal(
                environ, lambda device: self.db.call(labelling.device_names_photo, device, sha)
            )
            if refused:
                return _plain(start_response, *refused)
            return self._jpeg(start_response, self.photos.get(sha))
        if path == "/label":
            _allow(method, "GET", "HEAD")
            return self._queue(environ, start_response)
        if path == "/label/disagreements":
            _allow(method, "GET", "HEAD")
            return self._disagreements(environ, start_response)
        one = _LABEL_ONE.fullmatch(path)
        if one:
            _allow(method, "POST")
            return self._label(environ, start_response, one.group(1))
        return _plain(start_response, "404 Not Found", "Not found.\n")

    # ---- who is asking -------------------------------------------------------------------

    def session(self, environ: dict[str, Any]) -> tuple[str, Session] | None:
        cookie = cookies(environ).get(SESSION_COOKIE, "")
        if not cookie:
            return None
        found = self.db.call(accounts.session_for, cookie)
        return (cookie, found) if found else None

    def _reader(self, environ: dict[str, Any]) -> Session:
        """The signed-in person for a page; otherwise off to the sign-in form."""
        found = self.session(environ)
        if found is None:
            raise _Stop("303 See Other", "", [("Location", "/login")])
        return found[1]

    def _writer(self, environ: dict[str, Any]) -> tuple[str, Session, dict[str, str]]:
        """The session and form of a POST that may change something: same origin, session, its CSRF token."""
        why = cross_origin(environ)
        if why:
            log.warning("refused a cross-origin POST to %s: %s", environ.get("PATH_INFO"), why)
            raise _Stop("403 Forbidden", labelpages.message_page("Refused", f"Refused: {why}."))
        found = self.session(environ)
        if found is None:
            raise _Stop(
                "401 Unauthorized",
                labelpages.message_page(
                    "Signed out", "Sign in first: this needs a session (device tokens do not count)."
                ),
            )
        form = _form(environ)
        if not same_token(form.get("csrf", ""), found[1].csrf_token):
            raise _Stop(
                "403 Forbidden",
                labelpages.message_page(
                    "Refused",
                    "The form's security token is missing or wrong; reload the page and try again.",
                    link="/label",
                    link_text="Back to the queue",
                ),
            )
        return found[0], found[1], form

    def photo_refusal(self, environ: dict[str, Any], device_may_see: Callable[[str], bool]) -> tuple[str, str] | None:
        """None when this request may have a full photo: a session, or a device token whose device sent it."""
        if self.session(environ) is not None:
            return None
        scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "401 Unauthorized", "Full photos need a sign-in (or the device's own token).\n"
        device = self.db.device_for_token(token.strip())
        if device is None:
            return "401 Unauthorized", "Unknown or revoked token.\n"
        if not device_may_see(device):
            return "403 Forbidden", "This device sent no record with this photo.\n"
        return None

    # ---- sign in and out -----------------------------------------------------------------

    def _login_form(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        *,
        status: str = "200 OK",
        username: str = "",
        error: str = "",
        extra: Headers | None = None,
    ) -> Iterable[bytes]:
        token = secrets.token_urlsafe(32)
        headers = [set_cookie(environ, LOGIN_CSRF_COOKIE, token, max_age=3600, path="/login"), *(extra or [])]
        return _html(start_response, status, labelpages.login_page(token, username=username, error=error), headers)

    def _login(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        why = cross_origin(environ)
        if why:
            log.warning("refused a cross-origin sign-in: %s", why)
            return self._login_form(environ, start_response, status="403 Forbidden", error=f"Refused: {why}.")
        form = _form(environ)
        username = form.get("username", "").strip().lower()
        if not same_token(form.get("csrf", ""), cookies(environ).get(LOGIN_CSRF_COOKIE, "")):
            return self._login_form(
                environ, start_response, status="403 Forbidden", username=username,
                error="The sign-in form had expired or came from elsewhere; it is fresh now: sign in again.",
            )  # fmt: skip
        keys = (f"user:{username}", f"address:{client_address(environ)}")
        wait = self.throttle.wait(*keys)
        if wait:
            minutes = (wait + 59) // 60
            plural = "s" if minutes > 1 else ""
            return self._login_form(
                environ, start_response, status="429 Too Many Requests", username=username,
                error=f"Too many failed sign-ins; try again in {minutes} minute{plural} ({wait} s).",
                extra=[("Retry-After", str(wait))],
            )  # fmt: skip
        if not self.db.call(accounts.verify, username, form.get("password", "")):
            self.throttle.failed(*keys)
            log.warning("failed sign-in for %r from %s", username, client_address(environ))
            return self._login_form(
                environ, start_response, status="401 Unauthorized", username=username,
                error="Wrong username or password (or the account is disabled).",
            )  # fmt: skip
        self.throttle.succeeded(keys[0])
        cookie, _ = self.db.call(accounts.start_session, username)
        log.info("%s signed in from %s", username, client_address(environ))
        headers = [
            ("Location", "/label"),
            set_cookie(environ, SESSION_COOKIE, cookie, max_age=accounts.SESSION_HOURS * 3600),
            set_cookie(environ, LOGIN_CSRF_COOKIE, "", max_age=0, path="/login"),
        ]
        return _html(start_response, "303 See Other", "", headers)

    def _logout(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        cookie, session, _ = self._writer(environ)
        self.db.call(accounts.end_session, cookie)
        log.info("%s signed out", session.username)
        headers = [("Location", "/login"), set_cookie(environ, SESSION_COOKIE, "", max_age=0)]
        return _html(start_response, "303 See Other", "", headers)

    # ---- labelling -----------------------------------------------------------------------

    def _queue(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        session = self._reader(environ)
        items, unlabelled, total = self.db.call(labelling.queue, session.username, _QUEUE_SIZE)
        names = self.db.call(labelling.vocabulary)
        page = labelpages.queue_page(
            session.username, session.csrf_token, items, names, unlabelled=unlabelled, total=total, now=_now()
        )
        return _html(start_response, "200 OK", page)

    def _disagreements(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        session = self._reader(environ)
        items = self.db.call(labelling.disagreements)
        names = self.db.call(labelling.vocabulary)
        page = labelpages.disagreements_page(session.username, session.csrf_token, items, names, now=_now())
        return _html(start_response, "200 OK", page)

    def _label(self, environ: dict[str, Any], start_response: StartResponse, sha: str) -> Iterable[bytes]:
        _, session, form = self._writer(environ)
        label = form.get("label", "") or form.get("class", "")  # a quick button's value, else the chosen class
        background = form.get("background", "")
        back = {"link": "/label", "link_text": "Back to the queue"}
        if background and background not in labelling.BACKGROUND_WORDS:
            raise _Stop(
                "400 Bad Request",
                labelpages.message_page(
                    "Not a background",
                    f"{background!r} is not one of {', '.join(labelling.BACKGROUND_WORDS)}; nothing was stored.",
                    **back,
                ),
            )
        if label not in labelling.MARKS and label not in self.db.call(labelling.vocabulary):
            raise _Stop(
                "400 Bad Request",
                labelpages.message_page(
                    "Not a label",
                    f"{label!r} is not a class this collector knows nor one of the marks; nothing was stored.",
                    **back,
                ),
            )
        if not self.db.call(labelling.photo_exists, sha):
            raise _Stop(
                "404 Not Found",
                labelpages.message_page("No such photo", "There is no field photo with this checksum.", **back),
            )
        self.db.call(labelling.store_label, sha, session.username, label, background or None)
        log.info("%s labelled %s… as %s (background %s)", session.username, sha[:12], label, background or "not said")
        return _html(start_response, "303 See Other", "", [("Location", "/label")])

    def _jpeg(self, start_response: StartResponse, data: bytes | None) -> Iterable[bytes]:
        if data is None:
            return _plain(start_response, "404 Not Found", "No such photo.\n")
        start_response(
            "200 OK",
            [
                ("Content-Type", "image/jpeg"),
                ("Content-Length", str(len(data))),
                ("Cache-Control", "private, max-age=3600"),
                ("X-Content-Type-Options", "nosniff"),
            ],
        )
        return [data]


def _form(environ: dict[str, Any]) -> dict[str, str]:
    try:
        return read_form(environ)
    except FormError as exc:
        raise _Stop(
            "400 Bad Request",
            labelpages.message_page("Bad form", f"{exc}; nothing was stored.", link="/label", link_text="Back"),
        ) from None


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise _Stop(
            "405 Method Not Allowed",
            labelpages.message_page("Not allowed", f"Use {' or '.join(allowed)}."),
            [("Allow", ", ".join(allowed))],
        )


def _now() -> datetime:
    return datetime.now(UTC)


def _html(start_response: StartResponse, status: str, html: str, headers: Headers | None = None) -> list[bytes]:
    data = html.encode("utf-8")
    start_response(
        status,
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(data))),
            *PAGE_HEADERS,
            *(headers or []),
        ],
    )
    return [data]


def _plain(start_response: StartResponse, status: str, text: str) -> list[bytes]:
    data = text.encode("utf-8")
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(data))),
        ("Cache-Control", "no-store"),
    ]
    if status.startswith("401"):
        headers.append(("WWW-Authenticate", 'Bearer realm="leaf-collector"'))
    start_response(status, headers)
    return [data]
