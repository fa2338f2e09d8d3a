"""The device's collector token: a file only root (the service) may read."""

from __future__ import annotations

from pathlib import Path

from appliance.errors import SyncSetupError


def read_token(path: Path) -> str:
    """The device token, refusing a file other users could read (it is the device's password)."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise SyncSetupError(
            f"no token file at {path}: issue a token with `leaf-collector token issue DEVICE_ID` on the collector "
            f"and write it there (mode 600, owned by the service user), or set sync.token_file",
            "no token file",
        ) from None
    except (PermissionError, UnicodeDecodeError, IsADirectoryError) as exc:
        raise SyncSetupError(f"cannot read the token file {path}: {exc}", "token file unreadable") from None
    if mode & 0o007:
        raise SyncSetupError(
            f"the token file {path} is readable by other users; run `chmod 600 {path}`", "token file not private"
        )
    if not text or any(c.isspace() for c in text):
        raise SyncSetupError(
            f"the token file {path} must hold exactly one token (as printed by leaf-collector)", "bad token file"
        )
    return text
