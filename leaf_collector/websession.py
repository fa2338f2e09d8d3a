"""The rules a browser request must pass before it may change anything: cookies, CSRF, origin.

Every POST needs its session cookie and the session's CSRF token from the form (or, for the
sign-in form, the double-submit cookie), compared in constant time. A POST whose Origin is
another site is refused before any of that. The scheme and client address are what waitress
reports: behind nginx they are nginx's forwarded ones only when `serve --trusted-proxy` names
it (waitress then rewrites them), so a client cannot claim https or another address itself.
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import parse_qs, urlsplit

SESSION_COOKIE = "leaf_session"
LOGIN_CSRF_COOKIE = "leaf_login_csrf"
MAX_FORM_BYTES = 16 * 1024


class FormError(Exception):
    """The form could not be read; the message says why."""


def cookies(environ: dict[str, Any]) -> dict[str, str]:
    jar: dict[str, str] = {}
    for part in environ.get("HTTP_COOKIE", "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name and name not in jar:
            jar[name] = value.strip().strip('"')
    return jar


def is_https(environ: dict[str, Any]) -> bool:
    return environ.get("wsgi.url_scheme") == "https"


def client_address(environ: dict[str, Any]) -> str:
    return str(environ.get("REMOTE_ADDR") or "unknown")


def set_cookie(environ: dict[str, Any], name: str, value: str, *, max_age: int, path: str = "/") -> tuple[str, str]:
    secure = "; Secure" if is_https(environ) else ""
    return ("Set-Cookie", f"{name}={value}; Max-Age={max_age}; Path={path}; HttpOnly; SameSite=Strict{secure}")


def same_token(given: str, expected: str) -> bool:
    return bool(given) and bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def _host_port(netloc: str, scheme: str) -> tuple[str, int | None]:
    parts = urlsplit(f"//{netloc}")
    try:
        port = parts.port
    except ValueError:
        return "", None
    if port is None and scheme:
        port = {"http": 80, "https": 443}.get(scheme)
    return (parts.hostname or ""), port


def cross_origin(environ: dict[str, Any]) -> str | None:
    """Why this request is not from this site's own pages, or None.

    No Origin header (an old browser, curl) passes: the CSRF token still has to match. nginx
    passes $host, without the port, so a port is compared only where both sides name one.
    """
    if environ.get("HTTP_SEC_FETCH_SITE", "") == "cross-site":
        return "the request came from another site"
    origin = environ.get("HTTP_ORIGIN")
    if origin is None:
        return None
    parts = urlsplit(origin)
    if origin == "null" or parts.scheme not in ("http", "https") or not parts.netloc:
        return f"the request came from origin {origin!r}, not a page of this collector"
    origin_host, origin_port = _host_port(parts.netloc, parts.scheme)
    host_header = environ.get("HTTP_HOST", "")
    own_host, own_port = _host_port(host_header, "")
    if not own_host or origin_host.lower() != own_host.lower() or (own_port is not None and own_port != origin_port):
        return f"the request came from {origin}, not from this collector ({host_header or 'no Host header'})"
    return None


def read_form(environ: dict[str, Any]) -> dict[str, str]:
    """An application/x-www-form-urlencoded body of at most MAX_FORM_BYTES, one value per field."""
    raw_length = environ.get("CONTENT_LENGTH") or "0"
    if not raw_length.isdigit():
        raise FormError("bad Content-Length")
    length = int(raw_length)
    if length > MAX_FORM_BYTES:
        raise FormError(f"the form is {length} bytes; at most {MAX_FORM_BYTES} are read")
    body = environ["wsgi.input"].read(length) if length else b""
    try:
        text = body.decode("utf-8")
        fields = parse_qs(text, keep_blank_values=True, strict_parsing=False, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise FormError("the form is not valid UTF-8 form data") from None
    return {name: values[0] for name, values in fields.items()}
