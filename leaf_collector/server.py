"""Serving the WSGI app with waitress: pure Python, no C build, threads sized to the connection pool.

waitress speaks plain HTTP; TLS is terminated by a reverse proxy in front (see docs/collector.md).
waitress buffers a whole request before the app runs, so its own body cap is kept just above the
app's limit: the app answers a too-large batch with a 413 that says the limit, waitress cuts off
anything absurd.

Run bare, waitress has no header or body timeout and accepts 100 connections, which ~100
trickling clients used to fill (issue 11). So it takes `connection_limit` connections (poll(),
not select(), whose 1,024 descriptors would cap it) and RequestDeadline closes a request not
complete in time. It still reads a body before the app can refuse the token: the production
shape puts nginx in front (leaf_collector/nginx.py, docs/collector.md), which authenticates first.
"""

from __future__ import annotations

import logging
import resource
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leaf_collector.app import CollectorApp, Limits
from leaf_collector.db import CollectorDB, migrate, open_pool
from leaf_collector.deadline import RequestDeadline
from leaf_collector.errors import CollectorFailure
from leaf_collector.photostore import DiskPhotoStore

log = logging.getLogger("leaf_collector")


@dataclass(frozen=True)
class ServeOptions:
    dsn: str
    host: str = "127.0.0.1"
    port: int = 8080
    threads: int = 8
    limits: Limits = field(default_factory=Limits)
    photo_dir: Path = Path("/var/lib/leaf-collector/photos")  # full field photos, by checksum
    connection_limit: int = 1000  # waitress's default of 100 is what slow clients filled
    header_timeout_s: float = 10.0  # from a request's first byte to the end of its headers
    body_timeout_s: float = 120.0  # from its first byte to the end of its body (16 MiB on a slow link)
    idle_timeout_s: int = 60  # a keep-alive connection with no request begun
    trusted_proxy: str | None = None  # nginx's address: only its X-Forwarded-For/-Proto are believed


def parse_listen(text: str) -> tuple[str, int]:
    """'127.0.0.1:8080', '[::1]:8080' or ':8080' (all addresses) as (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise CollectorFailure(f"--listen must be HOST:PORT like 127.0.0.1:8080, got {text!r}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


class CollectorServer:
    """A running collector: migrations applied, pool open, waitress bound. `run()` blocks; `close()` stops it."""

    def __init__(self, options: ServeOptions) -> None:
        try:
            import waitress
        except ImportError:
            raise CollectorFailure("the collector needs waitress and psycopg: pip install ./leaf_collector") from None
        applied = migrate(options.dsn)
        if applied:
            log.info("applied database migrations %s", applied)
        self.db = CollectorDB(open_pool(options.dsn, size=options.threads))
        self.app = CollectorApp(self.db, options.limits, photos=DiskPhotoStore(options.photo_dir))
        raise_open_files_limit(options.connection_limit + options.threads + 64)
        self._server: Any = waitress.create_server(
            self.app,
            host=options.host,
            port=options.port,
            threads=options.threads,
            max_request_body_size=options.limits.max_request_bytes * 2 + 65536,
            max_request_header_size=65536,
            ident="leaf-collector",
            clear_untrusted_proxy_headers=True,
            channel_timeout=options.idle_timeout_s,
            connection_limit=options.connection_limit,
            asyncore_use_poll=True,
            **_proxy_settings(options.trusted_proxy),
        )
        self.deadline = RequestDeadline(options.header_timeout_s, options.body_timeout_s)
        self.deadline.install(self._server)
        self._closed = threading.Event()

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    @property
    def url(self) -> str:
        host = self._server.effective_host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def run(self) -> None:
        try:
            self._server.run()
        finally:
            self.close()

    def start_in_thread(self) -> threading.Thread:
        """Serve from a background thread (tests, embedding); close() stops it."""
        thread = threading.Thread(target=self.run, name="leaf-collector", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        from waitress import wasyncore

        self._server.task_dispatcher.shutdown(timeout=5)  # lets requests in progress finish
        wasyncore.close_all(self._server._map)  # listener, trigger and idle connections: run() returns
        self.db.close()


def _proxy_settings(trusted_proxy: str | None) -> dict[str, Any]:
    """Behind nginx, waitress takes the client's address and scheme from nginx's headers (sign-in rate
    limits per address, Secure cookies over https); from anyone else those headers are dropped."""
    if not trusted_proxy:
        return {}
    return {
        "trusted_proxy": trusted_proxy,
        "trusted_proxy_count": 1,
        "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto"},
    }


def raise_open_files_limit(wanted: int) -> None:
    """Lifts the soft descriptor limit (often 1,024) towards `wanted`, within the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def serve(options: ServeOptions) -> None:
    """Run until SIGTERM or Ctrl-C."""
    server = CollectorServer(options)

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"leaf-collector serving on {server.url} (page: {server.url}/ , API: {server.url}/api/v1/)", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        print("leaf-collector stopped", flush=True)
