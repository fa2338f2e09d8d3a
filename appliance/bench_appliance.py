"""`appliance bench-appliance`: drive the simulated appliance through N presses and time it.

The appliance runs as its own process, exactly as `appliance run --simulate` does, with a
real notify socket (start -> READY=1) and its real control socket (press -> result shown).
Figures: press -> result-on-display p50/p95 with a breakdown, start-up time, steady RSS.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .bench import _cores, _cpu_name
from .config import load_config
from .hardware.sim_button import send_press

STAGES = ("capture_ms", "quality_ms", "inference_ms", "commit_ms", "render_ms", "total_ms")


def _rss_mb(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def _tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def _wait_ready(sock: socket.socket, deadline: float) -> list[str]:
    seen = []
    while time.monotonic() < deadline:
        try:
            msg = sock.recv(4096).decode()
        except TimeoutError:
            continue
        seen.append(msg)
        if "READY=1" in msg.split("\n"):
            return seen
    raise RuntimeError(f"no READY=1 within the deadline (got {seen})")


def run(presses: int, out: Path, model: str | None = None, camera_size: str = "") -> dict:
    """`camera_size` "WxH": the simulated camera delivers frames that large, as the real one does."""
    with tempfile.TemporaryDirectory(prefix="appliance-bench-") as tmp:
        tmpdir = Path(tmp)
        cfg = tmpdir / "config.toml"
        model_line = f"path = '{model}'\n" if model else ""
        cfg.write_text(
            f"[device]\nid = 'bench'\ndata_dir = '{tmpdir / 'data'}'\n[daemon]\nresult_seconds = 2.0\n"
            f"[model]\n{model_line}[camera]\nsimulated_size = '{camera_size}'\n"
        )
        load_config(cfg)  # a bad --camera-size is a config error here, not a start-up that never gets READY
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(tmpdir / "notify.sock"))
        notify.settimeout(0.01)
        env = dict(os.environ, NOTIFY_SOCKET=str(tmpdir / "notify.sock"))
        cmd = [sys.executable, "-m", "appliance", "run", "--simulate", "--no-keyboard", "--config", str(cfg)]
        daemon_log = tmpdir / "daemon.log"
        t0 = time.monotonic()
        # Its log goes to a file: a pipe nobody reads fills after a few hundred presses and the
        # daemon then blocks on its next log line, which reads as a press with no result.
        with daemon_log.open("w", encoding="utf-8") as log_file:
            proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stderr=log_file, text=True)
        try:
            try:
                _wait_ready(notify, t0 + 60)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}; the daemon's log ends:\n{_tail(daemon_log)}") from None
            startup_s = time.monotonic() - t0
            socket_path = tmpdir / "data" / "control.sock"
            client_ms, stages = [], {k: [] for k in STAGES}
            for _ in range(presses):
                t = time.perf_counter()
                reply = send_press(socket_path, wait=True, timeout=30)
                client_ms.append((time.perf_counter() - t) * 1e3)
                if not reply.startswith("ok "):
                    raise RuntimeError(
                        f"press {len(client_ms)} failed: {reply}; the daemon's log ends:\n{_tail(daemon_log)}"
                    )
                ms = json.loads(reply[3:])["ms"]
                for k in STAGES:
                    stages[k].append(ms.get(k, 0.0))
            rss = _rss_mb(proc.pid)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
            stopping = False
            try:
                while True:
                    stopping |= "STOPPING=1" in notify.recv(4096).decode()
            except (TimeoutError, BlockingIOError):
                pass
        finally:
            if proc.poll() is None:
                proc.kill()
            notify.close()

    def pct(values: list[float]) -> dict[str, float]:
        a = np.array(values)
        return {"p50": round(float(np.percentile(a, 50)), 2), "p95": round(float(np.percentile(a, 95)), 2)}

    report = {
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpu": _cpu_name(), "cores": _cores()},
        "presses": presses,
        "camera_size": camera_size or "the sample photos as they are",
        "press_to_result_ms": pct(client_ms),
        "breakdown_ms": {k: pct(v) for k, v in stages.items()},
        "startup_to_ready_s": round(startup_s, 3),
        "steady_rss_mb": round(rss.get("VmRSS", 0.0), 1),
        "peak_rss_mb": round(rss.get("VmHWM", 0.0), 1),
        "exit_code": code,
        "stopping_sent": stopping,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def format_report(r: dict) -> str:
    lines = [
        f"{r['presses']} presses on the simulated appliance ({r['machine']['cpu']}, {r['machine']['cores']} cores), "
        f"camera frames: {r.get('camera_size', 'the sample photos as they are')}",
        f"  press -> result on display: p50 {r['press_to_result_ms']['p50']:.1f} ms, "
        f"p95 {r['press_to_result_ms']['p95']:.1f} ms",
    ]
    for k, v in r["breakdown_ms"].items():
        lines.append(f"    {k[:-3]:<10} p50 {v['p50']:7.2f} ms   p95 {v['p95']:7.2f} ms")
    lines += [
        f"  start -> READY=1: {r['startup_to_ready_s']:.2f} s",
        f"  steady RSS: {r['steady_rss_mb']:.0f} MB (peak {r['peak_rss_mb']:.0f} MB)",
        f"  SIGTERM: exit {r['exit_code']}, STOPPING=1 {'sent' if r['stopping_sent'] else 'NOT sent'}",
    ]
    return "\n".join(lines)
