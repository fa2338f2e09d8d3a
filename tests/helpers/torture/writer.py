"""A writer process for the kill -9 test: records diagnoses through the real SqliteStore.

Every record prints "ACK <id> <sha256>" after store.record() has returned, so a line on
stdout is a promise the store made: that diagnosis and its photo must survive any kill.

    python tests/helpers/torture/writer.py DATA_DIR SEED            write until killed
    python tests/helpers/torture/writer.py --fork-server DATA_DIR   read "go SEED" lines on stdin; for each,
        fork a child that writes until killed, print "PID <pid>", wait for it, print "DEAD <pid>"

The fork server pays Python's start-up once, so hundreds of kills fit in a test run; each
child is still its own process that opens the store afresh and dies by SIGKILL mid-write.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from appliance.store import SqliteStore
from tests.helpers.torture.support import diagnosis, photo_bytes


def write_forever(data_dir: Path, seed: int) -> None:
    rng = random.Random(seed)
    store = SqliteStore.open(data_dir / "diagnoses.sqlite3", data_dir)
    out = sys.stdout.fileno()
    while True:
        photo = photo_bytes(rng, rng.randint(500, 40_000))
        record = store.record(diagnosis(probability=rng.random()), photo, device_id="torture", latency={"x_ms": 1.0})
        digest = hashlib.sha256(photo).hexdigest()
        os.write(out, f"ACK {record.id} {digest}\n".encode())  # one write() below PIPE_BUF: never torn


def fork_server(data_dir: Path) -> None:
    out = sys.stdout.fileno()
    os.write(out, b"READY\n")
    while line := sys.stdin.readline():
        command, _, seed = line.strip().partition(" ")
        if command != "go":
            break
        pid = os.fork()
        if pid == 0:
            try:
                write_forever(data_dir, int(seed))
            finally:
                os._exit(3)  # only reached if writing failed: the parent reports the exit status
        os.write(out, f"PID {pid}\n".encode())
        _, status = os.waitpid(pid, 0)
        os.write(out, f"DEAD {pid} {status}\n".encode())


if __name__ == "__main__":
    if sys.argv[1] == "--fork-server":
        fork_server(Path(sys.argv[2]))
    else:
        write_forever(Path(sys.argv[1]), int(sys.argv[2]))
