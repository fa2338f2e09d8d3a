"""The real daemon in simulation: real model, real SQLite store, real control socket, real notify socket."""

from __future__ import annotations

import hashlib
import itertools
import socket
import threading
import time

import pytest

from appliance import screens
from appliance.daemon import State
from appliance.hardware.sim_button import send_press
from appliance.labels import label
from appliance.ports import LedPattern
from appliance.samples import sample_paths
from appliance.store import SqliteStore
from tests.helpers.daemon import Running, simulated_config, wait_for


def _expected_slug(path):
    return path.stem[3:].replace("pepper-bell", "pepper_bell").replace("-", "__", 1).replace("-", "_")


def test_presses_give_rows_photos_screens_and_leds(tmp_path):
    cfg = simulated_config(tmp_path)
    samples = sample_paths()
    with Running(cfg) as app:
        assert app.state is State.IDLE
        assert isinstance(app.screens_shown[-1], screens.ReadyScreen)
        replies = [send_press(cfg.control_socket_path, wait=True, timeout=30) for _ in samples]
    leds = list(app.leds.timeline)
    shown = list(app.screens_shown)
    frames = app.display.frames_written
    assert all(r.startswith("ok ") for r in replies), replies
    with SqliteStore.open(cfg.db_path, cfg.data_dir) as store:
        rows = list(reversed(store.recent(100)))
        photo_hashes = [hashlib.sha256(store.photo_file(r).read_bytes()).hexdigest() for r in rows]
    assert len(rows) == len(samples)
    for row, sample, digest in zip(rows, samples, photo_hashes, strict=True):
        assert row["device_id"] == "test-pi"
        assert row["photo_sha256"] == digest
        if "background" in sample.name:
            assert (row["verdict"], row["reason"]) == ("retake", "no_leaf")
        elif row["verdict"] == "diagnosis":  # never a wrong diagnosis: unsure means retake or unknown
            assert row["top1_slug"] == _expected_slug(sample), (sample.name, row["top1_slug"])
        elif row["verdict"] == "unknown":  # the crop is sure, the condition is not: the crop is named
            assert row["reason"] == "unknown_condition", (sample.name, row)
            assert row["crop"] == label(_expected_slug(sample)).crop, (sample.name, row)
        else:
            assert row["reason"] == "not_sure", (sample.name, row)
        assert row["crops"] == []  # no [diagnosis] crops: every crop the model knows
        assert {"capture_ms", "inference_ms", "commit_ms"} <= set(row["latency"])

    # The display got a result (or retake, or unknown) screen for every press, carrying the right words.
    results = [s for s in shown if isinstance(s, screens.ResultScreen | screens.RetakeScreen | screens.UnknownScreen)]
    assert len(results) == len(samples)
    assert all(s.crops == () for s in shown if isinstance(s, screens.ReadyScreen))  # "All crops"
    for screen, sample, row in zip(results, samples, rows, strict=True):
        if isinstance(screen, screens.UnknownScreen):
            assert row["verdict"] == "unknown" and screen.reason.value == row["reason"]
            assert (screen.headline, screen.crop) == (row["condition"], row["crop"])
        elif isinstance(screen, screens.RetakeScreen):
            assert row["verdict"] == "retake" and screen.reason.value == row["reason"]
            assert screen.headline == ("No leaf in view" if "background" in sample.name else "Not sure what this is")
        else:
            assert screen.diagnosis.condition == label(_expected_slug(sample)).condition
    assert isinstance(shown[-1], screens.MessageScreen) and shown[-1].title == "Stopped"
    assert (cfg.display_out_dir / "latest.png").exists() and frames >= 2 * len(samples)

    # LEDs: busy while starting, ready; then busy and the result colour for every press.
    patterns = [p for _, p in leds]
    assert patterns[:2] == [LedPattern.BUSY, LedPattern.READY]
    patterns = patterns[2:]
    after_busy = [b for a, b in itertools.pairwise(patterns) if a is LedPattern.BUSY]

    def led_for(row):
        if row["verdict"] == "retake":
            return LedPattern.RETAKE
        if row["verdict"] == "unknown":
            return LedPattern.UNKNOWN
        return LedPattern.HEALTHY if label(row["top1_slug"]).healthy else LedPattern.DISEASE

    assert after_busy == [led_for(row) for row in rows]
    assert patterns[-1] is LedPattern.OFF


def test_press_during_work_is_acknowledged_and_ignored(tmp_path):
    cfg = simulated_config(tmp_path)
    with Running(cfg) as app:
        app._busy.set()
        app.on_press(app_press := __import__("appliance.ports", fromlist=["Press"]).Press.SHORT)
        app._busy.clear()
        assert app.ignored_presses == 1 and app_press
        assert app._events.empty()


def test_unplugged_camera_shows_a_fault_and_recovers_by_itself(tmp_path):
    cfg = simulated_config(tmp_path)
    with Running(cfg) as app:
        app.camera.set_connected(False)
        reply = send_press(cfg.control_socket_path, wait=True, timeout=10)
        assert reply.startswith("error:") and "camera" in reply.lower()
        assert app.state is State.FAULT
        assert app.leds.current is LedPattern.FAULT_CAMERA
        fault = app.screens_shown[-1]
        assert isinstance(fault, screens.FaultScreen) and fault.code == 2
        app.camera.set_connected(True)
        wait_for(lambda: app.state is State.IDLE)
        assert app.leds.current is LedPattern.READY
        assert send_press(cfg.control_socket_path, wait=True, timeout=30).startswith("ok ")


def test_missing_model_is_a_fault_screen_not_a_crash(tmp_path):
    cfg = simulated_config(tmp_path, model=f"path = '{tmp_path / 'gone.onnx'}'")
    with Running(cfg) as app:
        assert app.state is State.FAULT
        assert app.leds.current is LedPattern.FAULT_MODEL
        shown = app.screens_shown[-1]
        assert isinstance(shown, screens.FaultScreen) and "not found" in shown.problem
        assert send_press(cfg.control_socket_path, wait=True, timeout=10).startswith("error:")


def test_configured_crops_are_on_the_ready_screen_and_in_every_record(tmp_path):
    cfg = simulated_config(tmp_path, diagnosis='crops = ["apple"]')
    with Running(cfg) as app:
        ready = app.screens_shown[-1]
        assert isinstance(ready, screens.ReadyScreen) and ready.crops == ("Apple",)
        reply = send_press(cfg.control_socket_path, wait=True, timeout=30)  # the tomato sample
    assert reply.startswith("ok "), reply
    with SqliteStore.open(cfg.db_path, cfg.data_dir) as store:
        (row,) = store.recent(5)
    assert row["crops"] == ["apple"]
    assert row["top1_slug"].startswith(("apple__", "background__", "other__")), row["top1_slug"]


def test_a_crop_the_model_does_not_know_is_a_config_fault(tmp_path):
    cfg = simulated_config(tmp_path, diagnosis='crops = ["banana"]')
    with Running(cfg) as app:
        assert app.state is State.FAULT
        assert app.leds.current is LedPattern.FAULT_OTHER
        shown = app.screens_shown[-1]
        assert isinstance(shown, screens.FaultScreen) and shown.title == "Configuration problem"
        assert "'banana'" in shown.problem and "apple" in shown.problem


def test_damaged_database_is_kept_and_shown_as_a_storage_fault(tmp_path):
    cfg = simulated_config(tmp_path)
    cfg.data_dir.mkdir(parents=True)
    cfg.db_path.write_bytes(b"this was a database once" * 100)
    before = cfg.db_path.read_bytes()
    with Running(cfg) as app:
        assert app.state is State.FAULT and app.leds.current is LedPattern.FAULT_STORAGE
    assert cfg.db_path.read_bytes() == before


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.05)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    messages: list[tuple[float, str]] = []
    stop = threading.Event()

    def pump():
        while not stop.is_set():
            try:
                messages.append((time.monotonic(), sock.recv(4096).decode()))
            except TimeoutError:
                continue

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    yield messages
    stop.set()
    t.join()
    sock.close()


def test_notify_ready_watchdog_only_while_healthy_and_stopping(tmp_path, monkeypatch, notify_socket):
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # systemd's WatchdogSec=0.4: pings every 0.2 s
    cfg = simulated_config(tmp_path)
    gate = threading.Event()
    with Running(cfg) as app:
        assert app.ready_sent
        real = app.diagnoser.diagnose

        def stuck(frame, **kw):  # a hung inference: the main loop stops turning
            gate.wait(10)
            return real(frame, **kw)

        app.diagnoser.diagnose = stuck
        time.sleep(0.6)
        threading.Thread(target=send_press, args=(cfg.control_socket_path,), daemon=True).start()
        wait_for(lambda: app.state is State.CLASSIFYING)
        stuck_at = time.monotonic()
        time.sleep(1.5)
        gate.set()
        wait_for(lambda: app.state is State.SHOWING_RESULT)
        time.sleep(0.6)
    texts = [m for _, m in notify_socket]
    assert any("READY=1" in m for m in texts)
    assert texts[-1] == "STOPPING=1" or any("STOPPING=1" in m for m in texts[-3:])
    pings = [t for t, m in notify_socket if m == "WATCHDOG=1"]
    assert any(t < stuck_at for t in pings), "no watchdog pings while healthy"
    # Once the last kick is older than the interval (0.4 s), pings stop until the loop turns again.
    assert not [t for t in pings if stuck_at + 0.5 < t < stuck_at + 1.4], "pinged while the loop was stuck"
    assert any(t > stuck_at + 1.5 for t in pings), "pings did not resume"
    assert any(m.startswith("STATUS=") for m in texts)


def test_long_press_exports_to_the_stick_and_says_so(tmp_path):
    import subprocess

    cfg = simulated_config(tmp_path)
    with Running(cfg) as app:
        reply = send_press(cfg.control_socket_path, long=True, wait=True, timeout=30)
        assert '"verdict": "no_usb_stick"' in reply
        assert app.screens_shown[-1].title == "No USB stick"
        for _ in range(2):
            assert send_press(cfg.control_socket_path, wait=True, timeout=30).startswith("ok ")
        cfg.export.folder.mkdir(parents=True)  # the simulated stick is plugged in
        reply = send_press(cfg.control_socket_path, long=True, wait=True, timeout=60)
        assert '"verdict": "exported"' in reply, reply
        patterns = [p for _, p in app.leds.timeline]
        shown = list(app.screens_shown)
    assert LedPattern.EXPORTING in patterns
    assert any(isinstance(s, screens.ProgressScreen) for s in shown)
    manifests = list(cfg.export.folder.rglob("manifest.sha256"))
    assert len(manifests) == 1
    check = subprocess.run(["sha256sum", "-c", "--quiet", "manifest.sha256"], cwd=manifests[0].parent, check=False)
    assert check.returncode == 0
    with SqliteStore.open(cfg.db_path, cfg.data_dir) as store:
        assert store.unexported() == [] and store.count() == 2


def test_real_process_sigterm_finishes_and_says_stopping(tmp_path):
    """`appliance run --simulate` as systemd runs it: READY=1, a press, SIGTERM -> STOPPING=1, exit 0."""
    import os
    import signal
    import subprocess
    import sys

    cfg = simulated_config(tmp_path)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(30)
    env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "notify.sock"))
    cmd = [
        sys.executable,
        "-m",
        "appliance",
        "run",
        "--simulate",
        "--no-keyboard",
        "--config",
        str(tmp_path / "config.toml"),
    ]
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        while not any("READY=1" in m for m in seen):
            seen.append(notify.recv(4096).decode())
        assert send_press(cfg.control_socket_path, wait=True, timeout=30).startswith("ok ")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        rest = []
        notify.settimeout(0.5)
        try:
            while True:
                rest.append(notify.recv(4096).decode())
        except TimeoutError:
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
        notify.close()
    assert "STOPPING=1" in rest
    assert not cfg.control_socket_path.exists()  # cleaned up on the way out
    with SqliteStore.open(cfg.db_path, cfg.data_dir) as store:
        assert store.count() == 1
    assert proc.stderr is not None and "Traceback" not in proc.stderr.read()
