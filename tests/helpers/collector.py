"""Helpers for the collector, sync and crops tests: records, tokens, counts, an in-process collector.

One throw-away PostgreSQL serves the whole session (started on first use, stopped when the
last module using it finishes); each test gets its own fresh database in it. Without the
PostgreSQL binaries or the collector's Python packages the tests skip with the reason, and
fail loudly when CI=true.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.result import Diagnosis, Quality, Ranked, RetakeReason, Timings, Verdict
from appliance.samples import sample_paths
from tests.helpers.figures import report_figure

PHOTOS = [p.read_bytes() for p in sample_paths()]


def require(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: this must be installed)")
    pytest.skip(reason)


def require_collector_packages() -> None:
    missing = [m for m in ("psycopg", "psycopg_pool", "waitress") if importlib.util.find_spec(m) is None]
    require(not missing, f"collector packages missing: {', '.join(missing)} (pip install ./leaf_collector)")


def issue_token(dsn: str, device_id: str) -> str:
    from leaf_collector import tokens
    from leaf_collector.db import connect

    with connect(dsn) as conn:
        return tokens.issue(conn, device_id)[0]


def db_counts(dsn: str, device_id: str | None = None) -> dict[str, int]:
    """Rows, distinct ids, thumbnails and full photos at base (for one device's records or all).

    "photos" counts the photos table (thumbnails); "full_photos" the field_photos rows these records
    name: one per distinct photo, however many records (or devices) sent the same bytes.
    """
    from leaf_collector.db import connect

    where, args = ("WHERE device_id = %s", (device_id,)) if device_id else ("", ())
    with connect(dsn) as conn:
        rows, distinct = conn.execute(f"SELECT count(*), count(DISTINCT id) FROM diagnoses {where}", args).fetchone()
        photos = conn.execute(
            f"SELECT count(*) FROM photos WHERE diagnosis_id IN (SELECT id FROM diagnoses {where})", args
        ).fetchone()[0]
        full = conn.execute(
            f"SELECT count(*) FROM field_photos WHERE sha256 IN (SELECT photo_sha256 FROM diagnoses {where})", args
        ).fetchone()[0]
    return {
        "rows": rows,
        "distinct": distinct,
        "duplicate_rows": rows - distinct,
        "photos": photos,
        "full_photos": full,
    }


def diagnosis(n: int) -> Diagnosis:
    retake = n % 5 == 4
    crops = [("Tomato", "Late blight"), ("Potato", "Early blight"), ("Apple", "Apple scab"), ("Maïs", "Rouille")]
    crop, condition = crops[n % len(crops)]
    return Diagnosis(
        verdict=Verdict.RETAKE if retake else Verdict.DIAGNOSIS,
        reason=RetakeReason.BLURRED if retake else None,
        top=(Ranked(f"{crop.lower()}_x", 0.9 - n % 7 / 100), Ranked("other", 0.05)),
        quality=Quality(120.0, 0.01, 0.0, 80.0, 0.4),
        timings=Timings(inference_ms=30.0),
        model_version="leafnet-test",
        model_sha256="ab" * 32,
        crop="" if retake else crop,
        condition="" if retake else condition,
    )


def fill_store(data_dir: Path, count: int, device_id: str) -> list[str]:
    """A real device store with `count` diagnoses and photos; returns their ids in order."""
    from appliance.store import SqliteStore

    with SqliteStore.open(data_dir / "diagnoses.sqlite3", data_dir) as store:
        return [
            store.record(diagnosis(n), PHOTOS[n % len(PHOTOS)], device_id=device_id, latency={"inference_ms": 30.0}).id
            for n in range(count)
        ]


def unsynced_ids(data_dir: Path) -> set[str]:
    from appliance.store import SqliteStore

    with SqliteStore.open(data_dir / "diagnoses.sqlite3", data_dir) as store:
        return {r["id"] for r in store.unsynced()}


def write_token(path: Path, token: str) -> Path:
    path.write_text(token + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def device_config(data_dir: Path, url: str, token_file: Path, device_id: str, **sync: object):
    """A device's config for sync tests. Full photos are off unless a test asks (`full_photos="teaching"`):
    the default's sample is drawn by record id, and these ids are random, so record tests count exactly."""
    from appliance.config import Config, DeviceConfig, SyncConfig

    sync.setdefault("full_photos", "none")
    return Config(
        device=DeviceConfig(id=device_id, data_dir=data_dir),
        sync=SyncConfig(enabled=True, url=url, token_file=token_file, **sync),  # type: ignore[arg-type]
    )


def in_process_collector(dsn: str, *, header_timeout_s: float = 10.0, photo_dir: Path | None = None, **limits: object):
    """A real collector (waitress + pool) on a free loopback port, served from a thread; close() it.

    Full photos go to `photo_dir`, by default a fresh temporary folder (`server.options.photo_dir`).
    """
    import tempfile

    from leaf_collector.app import Limits
    from leaf_collector.server import CollectorServer, ServeOptions

    options = ServeOptions(
        dsn=dsn,
        port=0,
        threads=4,
        limits=Limits(**limits),  # type: ignore[arg-type]
        header_timeout_s=header_timeout_s,
        photo_dir=photo_dir or Path(tempfile.mkdtemp(prefix="leaf-collector-photos-")),
    )
    server = CollectorServer(options)
    server.start_in_thread()
    return server


class FaultProxy:
    """A TCP relay in front of the collector that breaks the next POST (a batch) in a chosen way.

    fault (one-shot, then everything passes again): "cut_request" forwards half of the request's
    first chunk and hangs up on both sides; "drop_reply" lets the collector answer but the device
    never hears it; "on_reply" calls `on_reply()` (e.g. kill the collector) when the answer starts,
    then hangs up. GETs (whoami) always pass.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.fault: str | None = None
        self.on_reply: Callable[[], None] = lambda: None
        self.faults_done = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = None
        try:
            first = client.recv(65536)
            mode = "pass"
            if first.startswith(b"POST ") and self.fault:
                mode, self.fault = self.fault, None
                self.faults_done += 1
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=30)
            if mode == "cut_request":
                upstream.sendall(first[: len(first) // 2])
                return
            upstream.sendall(first)
            threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
            while data := upstream.recv(65536):
                if mode == "on_reply":
                    self.on_reply()
                if mode != "pass":
                    return
                client.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    _hang_up(sock)


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass


def _hang_up(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def print_counts(scenario: str, sent: int, dsn: str, device_id: str, acked_duplicates: int = 0) -> dict[str, int]:
    counts = db_counts(dsn, device_id)
    line = (
        f"COUNTS [{scenario}] sent={sent} stored={counts['rows']} duplicates={counts['duplicate_rows']} "
        f"lost={sent - counts['distinct']} replays_acknowledged_as_duplicate={acked_duplicates}"
    )
    print("\n" + line)
    report_figure(line)
    return counts


def call(url: str, body: bytes | None = None, token: str | None = None, method: str | None = None):
    request = urllib.request.Request(url, data=body, method=method or ("POST" if body is not None else "GET"))
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def record(device_id: str, n: int = 0, **changes: Any) -> dict[str, Any]:
    """One valid wire record of `device_id` (the n-th: its own time), with `changes` applied."""
    row = {
        "id": str(uuid.uuid4()),
        "created_at": f"2025-06-0{1 + n % 9}T10:{n % 60:02d}:00.000Z",
        "device_id": device_id,
        "model_version": "leafnet-1",
        "model_sha256": "ab" * 32,
        "verdict": "diagnosis",
        "reason": None,
        "top1_slug": "tomato_late_blight",
        "top1_probability": 0.91,
        "crop": "Tomato",
        "condition": "Late blight",
        "topk": [{"slug": "tomato_late_blight", "probability": 0.91}],
        "quality": {"brightness": 120.0},
        "latency": {"inference_ms": 31.0},
        "photo_sha256": "",
        "photo_bytes": None,
    }
    row.update(changes)
    return row
