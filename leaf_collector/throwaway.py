"""A throw-away PostgreSQL server in a temporary directory, for tests, the load test and trying things out.

It uses the distribution's own binaries (Debian: apt-get install postgresql). PostgreSQL
refuses to run as root, so under root the cluster belongs to the `postgres` user and every
command runs through `runuser`. It listens on a free loopback port only, with a random
password, and everything is deleted on stop.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from leaf_collector.errors import CollectorFailure

_DEBIAN_BINDIRS = Path("/usr/lib/postgresql")
_FAST = ("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")


class PostgresMissing(CollectorFailure):
    """No PostgreSQL server binaries on this machine."""


def find_bin_dir() -> Path:
    """The directory holding initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<newest>/bin."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(os.path.realpath(on_path)).parent
    if _DEBIAN_BINDIRS.is_dir():
        versions = sorted(
            (p for p in _DEBIAN_BINDIRS.iterdir() if (p / "bin" / "initdb").exists() and p.name.isdigit()),
            key=lambda p: int(p.name),
        )
        if versions:
            return versions[-1] / "bin"
    raise PostgresMissing(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found; install them with "
        "`apt-get install postgresql` (Debian) or put them on PATH"
    )


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThrowawayPostgres:
    """`with ThrowawayPostgres() as pg: pg.dsn` - a server for the length of the block.

    durable=False turns fsync off (tests: fast, nothing to keep); the load test keeps the
    defaults so its figures mean something.
    """

    def __init__(self, *, durable: bool = False, max_connections: int = 200) -> None:
        self.bin_dir = find_bin_dir()
        self.durable = durable
        self.max_connections = max_connections
        self.user = "leaf"
        self.password = secrets.token_hex(16)
        self.port = 0
        self.root: Path | None = None
        self._as_postgres = os.geteuid() == 0
        self._running = False

    # ---- life cycle ----------------------------------------------------------------------

    def start(self) -> ThrowawayPostgres:
        self.root = Path(tempfile.mkdtemp(prefix="leaf-pg-"))
        (self.root / "sock").mkdir()
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if self._as_postgres:
            owner = pwd.getpwnam("postgres")
            for path in (self.root, self.root / "sock", pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        try:
            self._run(
                "initdb", "-D", str(self.data), "-U", self.user, f"--pwfile={pwfile}", "--auth=scram-sha-256",
                "-E", "UTF8", "--locale=C", "--no-sync",
            )  # fmt: skip
            pwfile.unlink()
            self.port = free_loopback_port()
            self._pg_ctl_start()
        except BaseException:
            self._cleanup()
            raise
        self._running = True
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        if self._running:
            self._running = False
            with contextlib.suppress(PostgresFailed):
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")
        self._cleanup()

    def crash(self) -> None:
        """Stop at once, like a power cut (immediate mode: no checkpoint, recovery at the next start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def restart(self) -> None:
        """Start again after crash(), on the same port and data."""
        self._pg_ctl_start()

    def _pg_ctl_start(self) -> None:
        assert self.root is not None
        options = [
            "-c", "listen_addresses=127.0.0.1", "-p", str(self.port), "-k", str(self.root / "sock"),
            "-c", f"max_connections={self.max_connections}",
            *([] if self.durable else _FAST),
        ]  # fmt: skip
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_file), "-w", "-t", "60", "-o",
                  " ".join(options), "start")  # fmt: skip

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- use -----------------------------------------------------------------------------

    @property
    def data(self) -> Path:
        assert self.root is not None, "start() first"
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        assert self.root is not None, "start() first"
        return self.root / "postgres.log"

    def dsn_for(self, dbname: str) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{dbname}"

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def create_database(self, name: str) -> str:
        """A new empty database; returns its DSN."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn_for(name)

    # ---- plumbing ------------------------------------------------------------------------

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, cwd="/", check=False)
        if result.returncode != 0:
            tail = ""
            if self.root is not None and self.log_file.exists():
                tail = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-15:])
            raise PostgresFailed(
                f"{program} failed (exit {result.returncode}): {result.stderr.strip() or result.stdout.strip()}"
                + (f"\nserver log:\n{tail}" if tail else "")
            )

    def _cleanup(self) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


class PostgresFailed(CollectorFailure):
    """initdb or pg_ctl failed; the message has their output and the server log's end."""


# ---- one server shared by every test module of a pytest session ----------------------------

_shared: dict[str, Any] = {"server": None, "users": 0}
_shared_lock = threading.Lock()


def acquire_shared() -> ThrowawayPostgres:
    """The session's server, started on first use; pair every call with release_shared()."""
    with _shared_lock:
        if _shared["server"] is None:
            _shared["server"] = ThrowawayPostgres().start()
        _shared["users"] += 1
        return _shared["server"]


def release_shared() -> None:
    """Stops the shared server when its last user lets go (the end of the test session)."""
    with _shared_lock:
        _shared["users"] -= 1
        if _shared["users"] <= 0 and _shared["server"] is not None:
            _shared["server"].stop()
            _shared["server"] = None
