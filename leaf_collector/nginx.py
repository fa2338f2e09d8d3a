"""nginx in front of the collector: the shipped config (data/nginx-site.conf) and a child-process runner.

The production shape (docs/collector.md): nginx holds slow and hostile connections and
authenticates a request from its headers before reading its body; waitress behind it sees only
complete requests. The tests and the load test start a real Debian nginx from a prefix folder
with NginxProxy, so what they check is the file an operator installs.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from leaf_collector.errors import CollectorFailure
from leaf_wire import protocol

_DATA = Path(__file__).parent / "data"
_TEMP_DIRS = ("body", "proxy", "fastcgi", "uwsgi", "scgi")


class NginxMissing(CollectorFailure):
    """No nginx binary on this machine."""


@dataclass(frozen=True)
class SiteOptions:
    listen: str = "80"  # nginx's own syntax: "80", "127.0.0.1:8443", "[::]:80"
    upstream: str = "127.0.0.1:8080"  # where `leaf-collector serve --listen` is
    max_body_bytes: int = protocol.DEFAULT_MAX_REQUEST_BYTES  # must match serve --max-request-mb


def site_config(options: SiteOptions) -> str:
    """The `upstream` and `server` blocks (http context): Debian's sites-available file."""
    text = (_DATA / "nginx-site.conf").read_text(encoding="utf-8")
    for name, value in (
        ("LISTEN", options.listen),
        ("UPSTREAM", options.upstream),
        ("MAX_BODY", str(int(options.max_body_bytes))),
    ):
        text = text.replace(f"@{name}@", value)
    return text


def standalone_config(prefix: Path, options: SiteOptions) -> str:
    """A whole nginx.conf with pid, logs and temp files under `prefix` (tests, load test, trying out)."""
    text = (_DATA / "nginx-standalone.conf").read_text(encoding="utf-8")
    site = "\n".join(f"    {line}" if line else "" for line in site_config(options).splitlines())
    user = worker_user()
    text = text.replace("@USER@", f"user {user[0]} {user[1]};" if user else "# not root: workers run as this user")
    return text.replace("@PREFIX@", str(prefix)).replace("@SITE@", site)


def worker_user() -> tuple[str, str] | None:
    """Under root nginx's workers drop to `nobody` (they must be able to write the temp folders)."""
    if os.geteuid() != 0:
        return None
    nobody = pwd.getpwnam("nobody")
    return nobody.pw_name, grp.getgrgid(nobody.pw_gid).gr_name


def find_nginx() -> str:
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise NginxMissing("nginx was not found; install it with `apt-get install nginx-light` (Debian) or put it on PATH")


class NginxProxy:
    """`with NginxProxy(upstream_port) as proxy: proxy.url` - a real nginx in a temp folder, stopped on exit."""

    def __init__(self, upstream_port: int, port: int, max_body_bytes: int = protocol.DEFAULT_MAX_REQUEST_BYTES) -> None:
        self.binary = find_nginx()
        self.port = port
        self.options = SiteOptions(
            listen=f"127.0.0.1:{port}", upstream=f"127.0.0.1:{upstream_port}", max_body_bytes=max_body_bytes
        )
        self.prefix = Path(tempfile.mkdtemp(prefix="leaf-nginx-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def conf(self) -> Path:
        return self.prefix / "nginx.conf"

    def start(self) -> NginxProxy:
        try:
            self._write()
            self._check()
            self.process = subprocess.Popen(
                [self.binary, "-p", str(self.prefix), "-c", str(self.conf), "-g", "daemon off;"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            self._wait_for_port()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: the workers finish what they serve
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        shutil.rmtree(self.prefix, ignore_errors=True)

    def __enter__(self) -> NginxProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _write(self) -> None:
        user = worker_user()
        for name in _TEMP_DIRS:
            folder = self.prefix / "temp" / name
            folder.mkdir(parents=True)
            if user:
                shutil.chown(folder, *user)
        self.prefix.chmod(0o755)  # the workers (nobody) walk through it to their temp folders
        (self.prefix / "temp").chmod(0o755)
        self.conf.write_text(standalone_config(self.prefix, self.options), encoding="utf-8")

    def _check(self) -> None:
        result = subprocess.run(
            [self.binary, "-t", "-q", "-p", str(self.prefix), "-c", str(self.conf)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise CollectorFailure(f"nginx refused its config {self.conf}: {result.stderr.strip()}")

    def _wait_for_port(self) -> None:
        assert self.process is not None
        until = time.monotonic() + 20
        while time.monotonic() < until:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise CollectorFailure(f"nginx exited at start: {err.strip()} {self.error_log()[-1000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise CollectorFailure(f"nginx did not listen on port {self.port} within 20 s")
