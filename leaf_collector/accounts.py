"""Accounts of the people who label at base, and their sign-in sessions (tables of migration 4).

A session cookie is 256 random bits; only its sha256 is stored, so a copy of the database
signs nobody in. Each session carries its own CSRF token for the forms. A disabled account's
sessions are deleted at once, and the lookup also checks the account, so none outlives it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from leaf_collector import passwords
from leaf_collector.errors import CollectorFailure

if TYPE_CHECKING:
    import psycopg

SESSION_HOURS = 12
_USERNAME = re.compile(r"[a-z0-9._-]{1,64}")


class AccountError(CollectorFailure):
    """An account command that cannot be done; the message says why."""


@dataclass(frozen=True)
class AccountRow:
    username: str
    created_at: datetime
    disabled_at: datetime | None
    labels: int


@dataclass(frozen=True)
class Session:
    username: str
    csrf_token: str


def is_username(text: str) -> bool:
    return bool(_USERNAME.fullmatch(text))


def _check_username(username: str) -> None:
    if not is_username(username):
        raise AccountError(f"username {username!r} must be 1-64 characters of a-z 0-9 . _ - (lower case)")


def create(conn: psycopg.Connection, username: str, password: str) -> None:
    _check_username(username)
    hashed = passwords.hash_password(password)  # refuses a short one before anything is written
    with conn.transaction():
        cur = conn.execute(
            "INSERT INTO accounts (username, password_hash) VALUES (%s, %s) ON CONFLICT (username) DO NOTHING",
            (username, hashed),
        )
    if cur.rowcount != 1:
        raise AccountError(f"account {username!r} exists already; nothing was changed")


def disable(conn: psycopg.Connection, username: str) -> bool:
    """Stop the account signing in and end its sessions; False when unknown or already disabled."""
    _check_username(username)
    with conn.transaction():
        cur = conn.execute(
            "UPDATE accounts SET disabled_at = now() WHERE username = %s AND disabled_at IS NULL", (username,)
        )
        conn.execute("DELETE FROM sessions WHERE username = %s", (username,))
    return cur.rowcount == 1


def set_password(conn: psycopg.Connection, username: str, password: str) -> bool:
    """A new password for an enabled account; its sessions end (a stolen one with them). False when none."""
    return _new_password(conn, username, password, disabled=False)


def enable(conn: psycopg.Connection, username: str, password: str) -> bool:
    """Let a disabled account sign in again, with a new password (the old one may be why it was disabled)."""
    return _new_password(conn, username, password, disabled=True)


def _new_password(conn: psycopg.Connection, username: str, password: str, *, disabled: bool) -> bool:
    """A new hash for an account that is (or is not) disabled; it leaves enabled, with no session."""
    _check_username(username)
    hashed = passwords.hash_password(password)  # refuses a short one before anything is written
    with conn.transaction():
        cur = conn.execute(
            "UPDATE accounts SET password_hash = %s, disabled_at = NULL"
            " WHERE username = %s AND (disabled_at IS NOT NULL) = %s",
            (hashed, username, disabled),
        )
        conn.execute("DELETE FROM sessions WHERE username = %s", (username,))
    return cur.rowcount == 1


def list_accounts(conn: psycopg.Connection) -> list[AccountRow]:
    rows = conn.execute(
        """
        SELECT a.username, a.created_at, a.disabled_at, (SELECT count(*) FROM labels l WHERE l.username = a.username)
        FROM accounts a ORDER BY a.username
        """
    ).fetchall()
    return [AccountRow(*row) for row in rows]


def verify(conn: psycopg.Connection, username: str, password: str) -> bool:
    """True for an enabled account with this password; the same scrypt cost whatever the answer."""
    row = None
    if is_username(username):
        row = conn.execute(
            "SELECT password_hash, disabled_at FROM accounts WHERE username = %s", (username,)
        ).fetchone()
    ok = passwords.verify(row[0] if row else None, password)
    return ok and row is not None and row[1] is None


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode("utf-8")).hexdigest()


def start_session(conn: psycopg.Connection, username: str) -> tuple[str, Session]:
    """A new session: (the cookie value, shown to the browser only, and the session)."""
    cookie = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    with conn.transaction():
        conn.execute("DELETE FROM sessions WHERE expires_at <= now()")  # expired rows go as new ones come
        conn.execute(
            "INSERT INTO sessions (token_sha256, username, csrf_token, expires_at) VALUES (%s, %s, %s, now() + %s)",
            (_digest(cookie), username, csrf, timedelta(hours=SESSION_HOURS)),
        )
    return cookie, Session(username, csrf)


def session_for(conn: psycopg.Connection, cookie: str) -> Session | None:
    """The live session of this cookie: not expired, its account not disabled."""
    if not cookie:
        return None
    row = conn.execute(
        """
        SELECT s.username, s.csrf_token FROM sessions s JOIN accounts a ON a.username = s.username
        WHERE s.token_sha256 = %s AND s.expires_at > now() AND a.disabled_at IS NULL
        """,
        (_digest(cookie),),
    ).fetchone()
    return Session(*row) if row else None


def end_session(conn: psycopg.Connection, cookie: str) -> None:
    with conn.transaction():
        conn.execute("DELETE FROM sessions WHERE token_sha256 = %s", (_digest(cookie),))
