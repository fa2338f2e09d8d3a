"""Load benchmark: many simulated devices push their backlog at once to a real collector and PostgreSQL.

    python -m leaf_collector.loadtest --devices 50 --records 1000 --out loadtest.json
    leaf-collector loadtest ...                      (the same)

Without --dsn it starts a throw-away PostgreSQL (durable settings: fsync on) and drops it
afterwards. The collector runs as its own process (`leaf-collector serve`) on a loopback port;
each simulated device is a thread using the device's own client code, so the requests are the
ones a Pi sends (records with a real JPEG thumbnail). Reported: records/s end to end, the
devices' request latency and the collector's own time per request (its Server-Timing header),
and a check that PostgreSQL holds every record exactly once. Only loopback addresses are used.

Hostile clients (issue 11): `--slow-connections 500` holds that many half-sent requests open on
the public port the whole time (a header line every --slow-interval seconds, reopened whenever
the server cuts one), `--through-nginx` puts the shipped nginx config in front, and a /healthz
probe runs once a second. `--max-batch-p95-ms` fails the run when a device's batch (first try to
acknowledgement, retries included) takes longer at p95. The gate sets the thresholds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from leaf_collector.errors import CollectorFailure
from leaf_collector.server import raise_open_files_limit
from leaf_collector.slowclients import SlowClients
from leaf_collector.throwaway import ThrowawayPostgres, free_loopback_port
from leaf_wire import protocol
from leaf_wire.addresses import is_loopback_host
from leaf_wire.client import CollectorBusy, CollectorClient, CollectorError, encode_record

_CROPS = [("Tomato", "Late blight"), ("Potato", "Early blight"), ("Apple", "Apple scab"), ("Corn", "Common rust")]


@dataclass
class DeviceResult:
    device_id: str
    sent_ids: set[str] = field(default_factory=set)
    acknowledged: int = 0
    stored: int = 0
    duplicates: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    batch_ms: list[float] = field(default_factory=list)  # first try to acknowledgement, retries included
    server_ms: list[float] = field(default_factory=list)
    throttled: int = 0
    errors: list[str] = field(default_factory=list)
    complete: bool = False


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (no interpolation: an observed value)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(-(-pct * len(ordered) // 100)))
    return round(ordered[rank - 1], 2)


def _summary(values: list[float]) -> dict[str, float | None]:
    return {f"p{p}": percentile(values, p) for p in (50, 95, 99)} | {"max": round(max(values), 2) if values else None}


def sample_thumbnail() -> bytes:
    """A real device thumbnail of a sample photo (data/ATTRIBUTION.md): batches weigh what they do in the field."""
    return (Path(__file__).parent / "data" / "loadtest-thumbnail.jpg").read_bytes()


def _row(device_id: str, n: int, start: datetime) -> dict[str, Any]:
    crop, condition = _CROPS[n % len(_CROPS)]
    retake = n % 10 == 9
    return {
        "id": str(uuid.uuid4()),
        "created_at": (start + timedelta(seconds=n * 37)).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "device_id": device_id,
        "model_version": "leafnet-loadtest",
        "model_sha256": "0" * 64,
        "verdict": "retake" if retake else "diagnosis",
        "reason": "blurred" if retake else None,
        "top1_slug": f"{crop.lower()}_{condition.lower().replace(' ', '_')}",
        "top1_probability": 0.5 + (n % 50) / 100,
        "crop": "" if retake else crop,
        "condition": "" if retake else condition,
        "topk": [{"slug": "a", "probability": 0.8}, {"slug": "b", "probability": 0.1}],
        "quality": {"brightness": 120.0, "sharpness": 80.0, "plant_fraction": 0.4},
        "latency": {"inference_ms": 30.0, "commit_ms": 12.0},
        "photo_sha256": "1" * 64,
        "photo_bytes": 250_000,
    }


def run_device(
    client: CollectorClient,
    result: DeviceResult,
    records: int,
    batch_size: int,
    thumbnail: bytes | None,
    start_gate: threading.Barrier,
    deadline: float,
) -> None:
    start = datetime(2025, 6, 1, tzinfo=UTC)
    try:
        start_gate.wait(timeout=60)
    except threading.BrokenBarrierError:
        result.errors.append("start barrier broken")
        return
    made = 0
    while made < records:
        rows = [_row(result.device_id, made + i, start) for i in range(min(batch_size, records - made))]
        ids = [r["id"] for r in rows]
        parts = [encode_record(protocol.record_from_row(r, thumbnail=thumbnail)) for r in rows]
        result.sent_ids.update(ids)
        batch_started = time.perf_counter()
        while True:
            if time.monotonic() > deadline:
                result.errors.append("time limit reached")
                return
            try:
                reply = client.push_encoded(ids, parts)
                break
            except CollectorBusy as exc:
                result.throttled += 1
                time.sleep(min(exc.retry_after_s, 5.0))
            except CollectorError as exc:
                result.errors.append(str(exc))
                if len(result.errors) > 5 or not exc.transient:
                    return
                time.sleep(0.5)
        result.latencies_ms.append(reply.request_ms)
        result.batch_ms.append((time.perf_counter() - batch_started) * 1000.0)
        if reply.server_ms is not None:
            result.server_ms.append(reply.server_ms)
        result.acknowledged += len(reply.statuses)
        result.stored += reply.stored
        result.duplicates += reply.duplicates
        made += len(rows)
    result.complete = True


class HealthProbe:
    """GET /healthz once a second on the public port: the request issue 11 saw go unanswered."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url, self.timeout_s = url + protocol.HEALTH_PATH, timeout_s
        self.latencies_ms: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health-probe", daemon=True)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(self.timeout_s + 5)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(self.url, timeout=self.timeout_s) as response:
                    response.read()
                self.latencies_ms.append((time.perf_counter() - started) * 1000.0)
            except OSError as exc:
                self.failures.append(str(exc))
            self._stop.wait(1.0)


@contextlib.contextmanager
def _public_port(args: argparse.Namespace, collector_port: int, log_path: Path) -> Iterator[tuple[int, str]]:
    """The port devices and attackers use: nginx in front of the collector, or the collector itself."""
    if not args.through_nginx:
        yield collector_port, "collector (waitress, no proxy)"
        return
    from leaf_collector.nginx import NginxProxy

    proxy = NginxProxy(collector_port, free_loopback_port()).start()
    try:
        yield proxy.port, f"nginx ({proxy.binary}) in front of the collector"
    finally:
        log_path.write_text(proxy.error_log(), encoding="utf-8")
        proxy.stop()


def _check_loopback_dsn(dsn: str) -> None:
    from psycopg.conninfo import conninfo_to_dict

    host = str(conninfo_to_dict(dsn).get("host") or "")
    hosts = [h for h in host.split(",") if h]
    if any(not (h.startswith("/") or is_loopback_host(h)) for h in hosts):
        raise CollectorFailure(f"the load test only talks to loopback addresses; --dsn names host {host!r}")


def _start_collector(dsn: str, port: int, threads: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, LEAF_COLLECTOR_DSN=dsn, PYTHONUNBUFFERED="1")
    command = [
        sys.executable, "-m", "leaf_collector", "serve", "--listen", f"127.0.0.1:{port}",
        "--threads", str(threads),
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}{protocol.HEALTH_PATH}"
    until = time.monotonic() + 30
    while time.monotonic() < until:
        if process.poll() is not None:
            raise CollectorFailure(f"the collector exited at start:\n{log_path.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise CollectorFailure("the collector did not answer /healthz within 30 s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _count_in_database(dsn: str, prefix: str) -> tuple[int, int]:
    from leaf_collector.db import connect

    with connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT id) FROM diagnoses WHERE device_id LIKE %s", (prefix + "%",)
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _cleanup(dsn: str, prefix: str) -> None:
    from leaf_collector.db import connect

    with connect(dsn) as conn, conn.transaction():
        conn.execute("DELETE FROM diagnoses WHERE device_id LIKE %s", (prefix + "%",))
        conn.execute("DELETE FROM devices WHERE device_id LIKE %s", (prefix + "%",))


def _run_devices(
    args: argparse.Namespace, url: str, issued: dict[str, str], results: list[DeviceResult], thumbnail: bytes | None
) -> float:
    """Every device in its own thread, released at once; returns the wall time until the last finished."""
    gate = threading.Barrier(args.devices + 1)
    clients = [(CollectorClient(url, issued[r.device_id], timeout_s=60), r) for r in results]
    deadline = time.monotonic() + args.time_limit
    threads = [
        threading.Thread(
            target=run_device,
            args=(client, result, args.records, args.batch_size, thumbnail, gate, deadline),
            daemon=True,
        )
        for client, result in clients
    ]
    for thread in threads:
        thread.start()
    gate.wait(timeout=60)
    started = time.perf_counter()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + 5)
    return time.perf_counter() - started


def run(args: argparse.Namespace, dsn: str, postgres_note: str) -> dict[str, Any]:
    from leaf_collector import tokens
    from leaf_collector.db import connect, migrate

    _check_loopback_dsn(dsn)
    migrate(dsn)
    prefix = f"loadtest-{uuid.uuid4().hex[:6]}-"
    device_ids = [f"{prefix}{i:03d}" for i in range(args.devices)]
    with connect(dsn) as conn:
        issued = {d: tokens.issue(conn, d)[0] for d in device_ids}
    thumbnail = sample_thumbnail() if args.photos == "thumbnail" else None
    port = free_loopback_port()
    log_path = Path(args.out).with_suffix(".collector.log")
    process = _start_collector(dsn, port, args.threads, log_path)
    results = [DeviceResult(d) for d in device_ids]
    slow = None
    try:
        with contextlib.ExitStack() as stack:
            public, front = stack.enter_context(_public_port(args, port, log_path.with_suffix(".nginx.log")))
            url = f"http://127.0.0.1:{public}"
            if args.slow_connections:
                slow = stack.enter_context(
                    SlowClients("127.0.0.1", public, args.slow_connections, interval_s=args.slow_interval)
                )
                time.sleep(args.slow_warmup)  # the attackers were there first
            probe = stack.enter_context(HealthProbe(url))
            slow_before = slow.snapshot() if slow else None
            wall_s = _run_devices(args, url, issued, results, thumbnail)
            slow_after = slow.stop() if slow else None
    finally:
        _stop(process)
    rows, distinct = _count_in_database(dsn, prefix)
    if not args.keep:
        _cleanup(dsn, prefix)
    sent = sum(len(r.sent_ids) for r in results)
    stored = sum(r.stored for r in results)
    latencies = [v for r in results for v in r.latencies_ms]
    batches = [v for r in results for v in r.batch_ms]
    server = [v for r in results for v in r.server_ms]
    errors = [e for r in results for e in r.errors]
    complete = all(r.complete for r in results)
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "devices": args.devices,
        "records_per_device": args.records,
        "batch_size": args.batch_size,
        "photos": args.photos,
        "thumbnail_bytes": len(thumbnail) if thumbnail else 0,
        "collector_threads": args.threads,
        "public_port": front,
        "complete": complete,
        "records_sent": sent,
        "records_acknowledged": sum(r.acknowledged for r in results),
        "records_stored": stored,
        "acknowledged_as_duplicate": sum(r.duplicates for r in results),
        "rows_in_postgres": rows,
        "duplicate_rows_in_postgres": rows - distinct,
        "lost": sent - distinct,
        "requests": len(latencies),
        "throttled_429": sum(r.throttled for r in results),
        "errors": len(errors),
        "first_errors": errors[:5],
        "wall_s": round(wall_s, 2),
        "records_per_s": round(stored / wall_s, 1) if wall_s > 0 else None,
        "request_latency_ms": _summary(latencies),
        "batch_latency_ms": _summary(batches),
        "collector_time_ms": _summary(server),
        "slow_connections": {
            "wanted": args.slow_connections,
            "interval_s": args.slow_interval,
            "warmup_s": args.slow_warmup,
            "open_when_devices_started": slow_before.open_now if slow_before else 0,
            "at_end": asdict(slow_after) if slow_after else None,
        },
        "healthz": {
            "answered": len(probe.latencies_ms),
            "unanswered": len(probe.failures),
            "first_failures": probe.failures[:3],
            "latency_ms": _summary(probe.latencies_ms),
        },
        "postgres": postgres_note,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leaf-collector loadtest", description="Many simulated devices syncing at once (loopback only)."
    )
    parser.add_argument("--dsn", help="PostgreSQL on this machine (default: start a throw-away server)")
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--records", type=int, default=1000, help="records per device")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--photos", choices=("thumbnail", "none"), default="thumbnail")
    parser.add_argument("--threads", type=int, default=8, help="collector worker threads (and pool size)")
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds before the devices give up")
    parser.add_argument("--out", default="loadtest.json", help="where to write the figures (JSON)")
    parser.add_argument("--keep", action="store_true", help="keep the load test's rows (with --dsn)")
    parser.add_argument("--slow-connections", type=int, default=0, help="half-sent requests held open meanwhile")
    parser.add_argument("--slow-interval", type=float, default=3.0, help="seconds between their header lines")
    parser.add_argument("--slow-warmup", type=float, default=0.0, help="seconds they trickle before the devices start")
    parser.add_argument("--through-nginx", action="store_true", help="put the shipped nginx config in front")
    parser.add_argument("--max-batch-p95-ms", type=float, help="fail if a batch's p95 (retries included) is over")
    return parser


def _print(result: dict[str, Any], out: str) -> None:
    r, lat, own, batch = result, result["request_latency_ms"], result["collector_time_ms"], result["batch_latency_ms"]
    slow, health = result["slow_connections"], result["healthz"]
    print(
        f"load test: {r['devices']} devices x {r['records_per_device']} records "
        f"(batches of {r['batch_size']}, photos: {r['photos']}), collector threads {r['collector_threads']}\n"
        f"  public port: {r['public_port']}\n"
        f"  sent {r['records_sent']}, stored {r['records_stored']}, "
        f"acknowledged as duplicate {r['acknowledged_as_duplicate']}, rows in PostgreSQL {r['rows_in_postgres']}, "
        f"duplicate rows {r['duplicate_rows_in_postgres']}, lost {r['lost']}\n"
        f"  {result['records_per_s']} records/s over {result['wall_s']} s, {result['requests']} requests, "
        f"{result['throttled_429']} throttled (429), {result['errors']} errors\n"
        f"  batch latency (first try to acknowledgement) p50 {batch['p50']} ms, p95 {batch['p95']} ms, "
        f"max {batch['max']} ms\n"
        f"  request latency (devices) p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms\n"
        f"  collector time (Server-Timing) p50 {own['p50']} ms, p95 {own['p95']} ms, p99 {own['p99']} ms"
    )
    if slow["at_end"]:
        end = slow["at_end"]
        print(
            f"  slow connections: {slow['wanted']} wanted (a header line every {slow['interval_s']:g} s, "
            f"{slow['warmup_s']:g} s before the devices), "
            f"{slow['open_when_devices_started']} open when the devices started, {end['open_peak']} at most, "
            f"{end['open_now']} open at the end; {end['closed_by_server']} closed by the server and reopened "
            f"({end['opened']} opened in all, {end['connect_failures']} connects failed)"
        )
    print(
        f"  /healthz meanwhile: {health['answered']} answered, {health['unanswered']} unanswered, "
        f"max {health['latency_ms']['max']} ms\n  written to {out}"
    )


def failures(result: dict[str, Any], max_batch_p95_ms: float | None) -> list[str]:
    """The Must-show figures that failed (empty: the run passes)."""
    failed = []
    if not result["complete"]:
        failed.append("not every device finished")
    if result["lost"] or result["rows_in_postgres"] != result["records_sent"]:
        failed.append(f"{result['lost']} lost; {result['rows_in_postgres']} rows for {result['records_sent']} sent")
    if result["duplicate_rows_in_postgres"]:
        failed.append(f"{result['duplicate_rows_in_postgres']} duplicate rows")
    p95 = result["batch_latency_ms"]["p95"]
    if max_batch_p95_ms is not None and (p95 is None or p95 > max_batch_p95_ms):
        failed.append(f"batch p95 {p95} ms is over {max_batch_p95_ms:g} ms")
    slow = result["slow_connections"]
    if slow["wanted"] and slow["open_when_devices_started"] < slow["wanted"]:
        failed.append(f"only {slow['open_when_devices_started']} of {slow['wanted']} slow connections were open")
    if result["healthz"]["unanswered"]:
        failed.append(f"{result['healthz']['unanswered']} /healthz probes unanswered")
    return failed


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    raise_open_files_limit(args.slow_connections + args.devices * 2 + 256)
    if args.devices < 1 or args.records < 1 or not 1 <= args.batch_size <= protocol.MAX_RECORDS_PER_BATCH:
        print("loadtest: --devices and --records must be at least 1, --batch-size 1-1000", file=sys.stderr)
        return 2
    try:
        if args.dsn:
            result = run(args, args.dsn, "given --dsn")
        else:
            with ThrowawayPostgres(durable=True) as pg:
                dsn = pg.create_database("leaf_loadtest")
                result = run(args, dsn, f"throw-away server from {pg.bin_dir} (fsync on)")
    except CollectorFailure as exc:
        print(f"loadtest: {exc}", file=sys.stderr)
        return 2
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    _print(result, args.out)
    failed = failures(result, args.max_batch_p95_ms)
    for reason in failed:
        print(f"loadtest: FAILED: {reason} (see {args.out})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
