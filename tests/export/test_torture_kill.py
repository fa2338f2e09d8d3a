"""kill -9 at random moments: every diagnosis the store acknowledged survives, photo and all.

A writer process (tests/helpers/torture/writer.py) records diagnoses through the real SqliteStore and
prints each id once record() has returned; it is SIGKILLed at a random moment, again and
again, on the same database. Afterwards every acknowledged row must be there with its photo
(right SHA-256) and PRAGMA integrity_check must say ok. This proves the write ordering
against process death; power loss additionally relies on fsync reaching the card (see
docs/durability.md).
"""

from __future__ import annotations

import hashlib
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from appliance.store import SqliteStore
from appliance.store.photos import is_temp_name
from tests.helpers.figures import report_figure
from tests.helpers.torture.support import REPO

WRITER = REPO / "tests" / "helpers" / "torture" / "writer.py"
FORK_KILLS = 200  # children of the fork server, each SIGKILLed mid-write
EXEC_KILLS = 10  # freshly started interpreters, killed during start-up or writing
LINE_TIMEOUT_S = 30


class Lines:
    """A child's stdout as a queue of lines, read by a thread so the test can wait with a timeout."""

    def __init__(self, stream) -> None:
        self.queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for raw in stream:
            self.queue.put(raw.decode("utf-8", "replace"))
        self.queue.put(None)

    def next(self) -> str | None:
        return self.queue.get(timeout=LINE_TIMEOUT_S)


def acks_from(line: str, acked: dict[str, str]) -> None:
    if line.startswith("ACK ") and line.endswith("\n"):  # a line cut by the kill is no promise
        _, rid, digest = line.split()
        acked[rid] = digest


def kill_moment(rng: random.Random) -> float:
    """Mostly mid-stream, sometimes right at start-up (opening, migrating, sweeping)."""
    return rng.uniform(0, 0.004) if rng.random() < 0.25 else rng.uniform(0.004, 0.08)


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def run_fork_server(data_dir: Path, rng: random.Random, errors: Path, acked: dict[str, str]) -> int:
    with errors.open("wb") as err:
        server = subprocess.Popen(
            [sys.executable, str(WRITER), "--fork-server", str(data_dir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env(),
        )  # fmt: skip
    lines = Lines(server.stdout)
    kills = 0
    try:
        assert lines.next() == "READY\n", errors.read_text()
        for _ in range(FORK_KILLS):
            server.stdin.write(f"go {rng.randrange(2**32)}\n".encode())
            server.stdin.flush()
            line = lines.next()
            assert line and line.startswith("PID "), f"{line!r}\n{errors.read_text()}"
            pid = int(line.split()[1])
            time.sleep(kill_moment(rng))
            os.kill(pid, signal.SIGKILL)
            kills += 1
            while (line := lines.next()) is not None and not line.startswith("DEAD "):
                acks_from(line, acked)
            assert line is not None, errors.read_text()
            status = int(line.split()[2])
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (
                f"the writer stopped by itself (status {status}) instead of being killed:\n{errors.read_text()}"
            )
    finally:
        server.stdin.close()
        server.wait(timeout=LINE_TIMEOUT_S)
    return kills


def run_fresh_processes(data_dir: Path, rng: random.Random, errors: Path, acked: dict[str, str]) -> int:
    kills = 0
    for _ in range(EXEC_KILLS):
        with errors.open("ab") as err:
            writer = subprocess.Popen(
                [sys.executable, str(WRITER), str(data_dir), str(rng.randrange(2**32))],
                stdout=subprocess.PIPE, stderr=err, env=env(),
            )  # fmt: skip
        lines = Lines(writer.stdout)
        time.sleep(rng.uniform(0.05, 0.8))  # Python start-up, imports, store open, or mid-write
        writer.kill()
        kills += 1
        writer.wait(timeout=LINE_TIMEOUT_S)
        while (line := lines.next()) is not None:
            acks_from(line, acked)
        assert writer.returncode == -signal.SIGKILL, errors.read_text()
    return kills


def survived(store: SqliteStore, rid: str, digest: str) -> bool:
    row = store.get(rid)
    if row is None or row["photo_sha256"] != digest:
        return False
    photo = store.photo_file(row)
    return photo.is_file() and hashlib.sha256(photo.read_bytes()).hexdigest() == digest


def test_no_acknowledged_diagnosis_is_lost_to_kill_9(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "data"
    rng = random.Random(int(os.environ.get("TORTURE_SEED", "20240517")))
    acked: dict[str, str] = {}
    errors = tmp_path / "writer-stderr.txt"
    kills = run_fork_server(data_dir, rng, errors, acked)
    kills += run_fresh_processes(data_dir, rng, errors, acked)

    conn = sqlite3.connect(data_dir / "diagnoses.sqlite3")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
    with SqliteStore.open(data_dir / "diagnoses.sqlite3", data_dir) as store:
        store.check_integrity(full=True)
        lost, verified = [], 0
        for rid, digest in acked.items():
            if survived(store, rid, digest):
                verified += 1
            else:
                lost.append(rid)
        rows = store.count()
        referenced = {store.photo_file(r) for r in store.recent(limit=rows)}
    files = [p for p in (data_dir / "photos").rglob("*") if p.is_file()]
    orphans = [p for p in files if p not in referenced and not is_temp_name(p.name)]
    temps = [p for p in files if is_temp_name(p.name)]
    line = (
        f"TORTURE kills={kills} acknowledged={len(acked)} verified={verified} lost={len(lost)} "
        f"rows={rows} unacknowledged_rows={rows - len(acked)} orphan_photos={len(orphans)} "
        f"temp_files={len(temps)}"
    )
    report_figure(line)
    with capsys.disabled():
        print("\n" + line)
    assert kills >= 200
    assert len(acked) > 50  # the writers really were writing when they were killed
    assert lost == [], f"{len(lost)} acknowledged diagnoses lost, e.g. {lost[:3]}"
    assert rows >= len(acked)
