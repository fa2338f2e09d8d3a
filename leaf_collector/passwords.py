"""Account passwords: scrypt (standard library), stored as one self-describing string.

`scrypt$N$r$p$<salt>$<key>` carries its own cost, so the cost can be raised later and old
hashes still verify. Checking a user that does not exist still runs one scrypt against a
dummy hash: the reply time does not tell which usernames exist.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from leaf_collector.errors import CollectorFailure

MIN_LENGTH = 12
_N, _R, _P = 2**14, 8, 1
_SALT_BYTES, _KEY_BYTES = 16, 32
_MAXMEM = 64 * 1024 * 1024  # N=2^14, r=8 needs 16 MiB; OpenSSL's default cap is 32 MiB


class WeakPassword(CollectorFailure):
    """A new password that is refused; the message says what is needed."""


def check_new(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(
            f"the password has {len(password)} characters; at least {MIN_LENGTH} are needed "
            f"(a few unrelated words make a long one that is easy to type)"
        )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _derive(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=length)


def hash_password(password: str) -> str:
    check_new(password)
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _derive(password, salt, _N, _R, _P, _KEY_BYTES)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(key)}"


# A well-formed hash of a random password nobody knows: what an unknown user is checked against.
_DUMMY = f"scrypt${_N}${_R}${_P}${_b64(b'leaf-dummy-salt!')}${_b64(bytes(_KEY_BYTES))}"


def verify(stored: str | None, password: str) -> bool:
    """True when `password` matches `stored`; None (no such user) costs the same time and is False."""
    target = stored if stored is not None else _DUMMY
    try:
        scheme, n, r, p, salt_b64, key_b64 = target.split("$")
        if scheme != "scrypt":
            raise ValueError(scheme)
        salt, key = base64.b64decode(salt_b64, validate=True), base64.b64decode(key_b64, validate=True)
        candidate = _derive(password, salt, int(n), int(r), int(p), len(key))
    except ValueError:
        return False  # a damaged stored hash matches nothing
    return hmac.compare_digest(candidate, key) and stored is not None
