"""The device side of sync: the background worker and its state line, TLS, tokens, thumbnails, backoff."""

from __future__ import annotations

import http.server
import io
import queue
import random
import re
import shutil
import socket
import ssl
import subprocess
import threading
import wsgiref.simple_server
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from appliance.config import Config
from appliance.errors import SyncSetupError
from appliance.samples import sample_paths
from appliance.sync import (
    SyncState,
    SyncStatus,
    SyncWorker,
    backoff_delay,
    client_from_config,
    cmd_sync,
    make_thumbnail,
    read_token,
)
from leaf_collector.throwaway import free_loopback_port
from leaf_wire.client import CollectorClient, CollectorError, CollectorTLSError
from tests.helpers.collector import (
    PHOTOS,
    db_counts,
    device_config,
    fill_store,
    in_process_collector,
    issue_token,
    require,
    unsynced_ids,
    write_token,
)

DEVICE = "pi-sync-01"
WAIT_S = 30  # generous upper bound for a state to appear; tests do not measure time


class StateLog:
    """on_change target: every state the worker announces, waitable."""

    def __init__(self) -> None:
        self.states: queue.Queue[SyncState] = queue.Queue()
        self.seen: list[SyncState] = []

    def __call__(self, state: SyncState) -> None:
        self.states.put(state)

    def wait_for(self, predicate) -> SyncState:  # type: ignore[no-untyped-def]
        while True:
            state = self.states.get(timeout=WAIT_S)
            self.seen.append(state)
            if predicate(state):
                return state


def worker_for(cfg: Config, log: StateLog) -> SyncWorker:
    return SyncWorker(cfg, on_change=log, first_delay_s=0, rng=random.Random(1))


# ---------------------------------------------------------------- the state line


def test_state_line_says_what_the_farmer_needs_in_one_line() -> None:
    now = datetime(2025, 6, 1, 12, 30, tzinfo=UTC)
    at = datetime(2025, 6, 1, 12, 4, tzinfo=UTC)
    local = at.astimezone()
    assert SyncState(SyncStatus.OFF).line(now) == "Sync off"
    assert SyncState(SyncStatus.STARTING).line(now) == "Not synced yet"
    assert SyncState(SyncStatus.STARTING, waiting=37).line(now) == "Not synced yet, 37 waiting"
    assert SyncState(SyncStatus.SYNCING, waiting=37).line(now) == "Syncing, 37 waiting"
    assert SyncState(SyncStatus.SYNCED, 0, at).line(now) == f"Synced {local:%H:%M}, 0 waiting"
    assert SyncState(SyncStatus.OFFLINE, 37, at, "offline").line(now) == "Offline, 37 waiting"
    assert SyncState(SyncStatus.OFFLINE, 37, at, "interrupted").line(now) == "Sync interrupted, 37 waiting"
    assert SyncState(SyncStatus.OFFLINE, 37, at, "collector busy").line(now) == "Collector busy, 37 waiting"
    assert SyncState(SyncStatus.ERROR, 3, at, "token refused").line(now) == "Sync error: token refused"
    days_ago = SyncState(SyncStatus.SYNCED, 0, at - timedelta(days=3)).line(now)
    assert re.fullmatch(r"Synced \d{1,2} [A-Z][a-z]{2} \d\d:\d\d, 0 waiting", days_ago), days_ago


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    rng = random.Random(7)
    raws = [min(900.0, 15.0 * 2 ** (n - 1)) for n in range(1, 12)]
    delays = [backoff_delay(n, 300, rng) for n in range(1, 12)]
    for delay, raw in zip(delays, raws, strict=True):
        assert raw / 2 <= delay <= raw
    assert raws[-1] == 900.0
    assert len({round(d, 3) for d in delays}) == len(delays)  # jittered: a fleet does not retry in step
    assert backoff_delay(30, 3600, rng) <= 3600  # a long interval is never shortened by the cap
    assert backoff_delay(1, 10, rng) <= 10


# ---------------------------------------------------------------- pieces


def test_token_file_must_exist_be_private_and_hold_one_token(tmp_path: Path) -> None:
    path = tmp_path / "sync.token"
    with pytest.raises(SyncSetupError, match="no token file at"):
        read_token(path)
    path.write_text("leaf_abc\n")
    path.chmod(0o644)
    with pytest.raises(SyncSetupError, match="readable by other users; run `chmod 600"):
        read_token(path)
    path.chmod(0o600)
    assert read_token(path) == "leaf_abc"
    path.write_text("leaf_a leaf_b\n")
    with pytest.raises(SyncSetupError, match="exactly one token"):
        read_token(path)
    path.write_text("")
    with pytest.raises(SyncSetupError) as caught:
        read_token(path)
    assert caught.value.summary == "bad token file"


def test_thumbnail_is_a_small_jpeg_and_garbage_gives_none() -> None:
    thumbnail = make_thumbnail(PHOTOS[0])
    assert thumbnail is not None and thumbnail.startswith(b"\xff\xd8\xff")
    with Image.open(io.BytesIO(thumbnail)) as image:
        assert max(image.size) <= 160
    assert len(thumbnail) < len(PHOTOS[0])
    assert make_thumbnail(b"\xff\xd8\xff not really a jpeg") is None


def test_cmd_sync_without_url_or_with_a_token_for_another_device(tmp_path: Path, dsn: str) -> None:
    out = io.StringIO()
    assert cmd_sync(Config(), out=out) == 2
    assert "sync is not set up" in out.getvalue()

    server = in_process_collector(dsn)
    try:
        token_file = write_token(tmp_path / "t", issue_token(dsn, "someone-else"))
        fill_store(tmp_path / "d", 2, DEVICE)
        out = io.StringIO()
        assert cmd_sync(device_config(tmp_path / "d", server.url, token_file, DEVICE), out=out) == 2
        assert "the token belongs to 'someone-else'" in out.getvalue() and "nothing sent" in out.getvalue()
        assert db_counts(dsn)["rows"] == 0
    finally:
        server.close()


def test_redirects_are_refused_so_the_token_cannot_leak(tmp_path: Path) -> None:
    hits: list[str] = []

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(302)
            self.send_header("Location", "http://elsewhere.invalid/steal")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = CollectorClient(f"http://127.0.0.1:{server.server_address[1]}", "leaf_secret")
        with pytest.raises(CollectorError, match="redirects are not followed"):
            client.whoami()
        assert hits == ["/api/v1/whoami"]
    finally:
        server.shutdown()


# ---------------------------------------------------------------- TLS


@pytest.fixture
def tls_collector(dsn: str, tmp_path: Path):
    """The real collector app behind real TLS with a self-signed certificate."""
    from leaf_collector.app import CollectorApp
    from leaf_collector.db import CollectorDB, open_pool

    require(shutil.which("openssl") is not None, "the openssl command is missing (apt-get install openssl)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    from leaf_collector.photostore import DiskPhotoStore

    app = CollectorApp(CollectorDB(open_pool(dsn, 2)), photos=DiskPhotoStore(tmp_path / "photos"))

    class Quiet(wsgiref.simple_server.WSGIRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    httpd = wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=Quiet)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}", cert
    httpd.shutdown()
    app.db.close()


def test_tls_is_verified_and_a_ca_file_trusts_a_self_signed_collector(tls_collector, dsn, tmp_path) -> None:
    url, cert = tls_collector
    token_file = write_token(tmp_path / "t", issue_token(dsn, DEVICE))
    data = tmp_path / "device"
    ids = fill_store(data, 4, DEVICE)

    untrusting = device_config(data, url, token_file, DEVICE)
    with pytest.raises(CollectorTLSError, match=r"not trusted.*sync\.ca_file"):
        client_from_config(untrusting).whoami()
    out = io.StringIO()
    assert cmd_sync(untrusting, out=out) == 1
    assert "not trusted" in out.getvalue()
    assert unsynced_ids(data) == set(ids)

    trusting = device_config(data, url, token_file, DEVICE, ca_file=cert)
    out = io.StringIO()
    assert cmd_sync(trusting, out=out) == 0, out.getvalue()
    assert db_counts(dsn, DEVICE)["rows"] == 4
    assert unsynced_ids(data) == set()


# ---------------------------------------------------------------- the worker


def test_disabled_worker_starts_no_thread_and_says_sync_off(tmp_path: Path) -> None:
    worker = SyncWorker(Config())
    worker.start()
    assert worker.line() == "Sync off"
    assert worker.stop() is True
    assert not [t for t in threading.enumerate() if t.name == "leaf-sync"]


def test_worker_syncs_in_the_background_and_counts_new_records(tmp_path: Path, dsn: str) -> None:
    server = in_process_collector(dsn)
    data = tmp_path / "device"
    fill_store(data, 5, DEVICE)
    cfg = device_config(data, server.url, write_token(tmp_path / "t", issue_token(dsn, DEVICE)), DEVICE, batch_size=2)
    log = StateLog()
    worker = worker_for(cfg, log)
    try:
        assert worker.line() == "Not synced yet"
        worker.start()
        synced = log.wait_for(lambda s: s.status == SyncStatus.SYNCED)
        assert re.fullmatch(r"Synced \d\d:\d\d, 0 waiting", synced.line()), synced.line()
        assert any(s.status == SyncStatus.SYNCING for s in log.seen)
        assert db_counts(dsn, DEVICE)["rows"] == 5

        fill_store(data, 3, DEVICE)  # the daemon records three more diagnoses...
        for _ in range(3):
            worker.note_new_record()  # ...and tells the worker, which counts them without the database
        assert worker.state.waiting == 3
        assert worker.line().endswith(", 3 waiting")
        worker.sync_now()
        log.wait_for(lambda s: s.status == SyncStatus.SYNCED and s.waiting == 0)
        assert db_counts(dsn, DEVICE) == {"rows": 8, "distinct": 8, "duplicate_rows": 0, "photos": 8, "full_photos": 0}
        assert unsynced_ids(data) == set()
    finally:
        assert worker.stop() is True
        server.close()


def test_worker_offline_shows_what_waits(tmp_path: Path) -> None:
    data = tmp_path / "device"
    fill_store(data, 4, DEVICE)
    closed_port = free_loopback_port()  # nothing listens there
    cfg = device_config(data, f"http://127.0.0.1:{closed_port}", write_token(tmp_path / "t", "leaf_x"), DEVICE)
    log = StateLog()
    worker = worker_for(cfg, log)
    worker.start()
    try:
        state = log.wait_for(lambda s: s.status == SyncStatus.OFFLINE)
        assert state.line() == "Offline, 4 waiting"
        assert "refused the connection" in state.detail
    finally:
        assert worker.stop() is True
    assert unsynced_ids(data) != set()


@pytest.mark.parametrize(
    ("token_device", "expected"),
    [(None, "Sync error: token refused"), ("another-pi", "Sync error: token is for another device")],
)
def test_worker_shows_token_problems(tmp_path: Path, dsn: str, token_device: str | None, expected: str) -> None:
    server = in_process_collector(dsn)
    data = tmp_path / "device"
    fill_store(data, 2, DEVICE)
    token = issue_token(dsn, token_device) if token_device else "leaf_wrong"
    log = StateLog()
    worker = worker_for(device_config(data, server.url, write_token(tmp_path / "t", token), DEVICE), log)
    worker.start()
    try:
        state = log.wait_for(lambda s: s.status == SyncStatus.ERROR)
        assert state.line() == expected
        assert db_counts(dsn)["rows"] == 0
    finally:
        assert worker.stop() is True
        server.close()


def test_worker_never_makes_the_caller_wait_for_the_network(tmp_path: Path) -> None:
    data = tmp_path / "device"
    fill_store(data, 3, DEVICE)
    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections, never answers
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    cfg = device_config(data, url, write_token(tmp_path / "t", "leaf_x"), DEVICE, timeout_s=1.0)
    log = StateLog()
    worker = worker_for(cfg, log)
    try:
        worker.start()
        syncing = log.wait_for(lambda s: s.status == SyncStatus.SYNCING)
        # The worker is now stuck in a request; the daemon's calls still return at once:
        assert syncing.line() == "Syncing, 3 waiting"
        assert worker.line() == "Syncing, 3 waiting"
        worker.note_new_record()
        assert worker.state.waiting == 4
        state = log.wait_for(lambda s: s.status == SyncStatus.OFFLINE)
        assert "no answer" in state.detail
    finally:
        assert worker.stop() is True
        silent.close()


def test_worker_holds_back_refused_records_and_says_how_many(tmp_path: Path, dsn: str) -> None:
    server = in_process_collector(dsn)
    data = tmp_path / "device"
    fill_store(data, 3, DEVICE)
    old = fill_store(data, 2, "old-hostname")  # recorded before the device was renamed
    log = StateLog()
    worker = worker_for(
        device_config(data, server.url, write_token(tmp_path / "t", issue_token(dsn, DEVICE)), DEVICE), log
    )
    worker.start()
    try:
        state = log.wait_for(lambda s: s.status == SyncStatus.ERROR)
        assert state.line() == "Sync error: 2 records refused"
        assert state.waiting == 2
        assert "does not match this token's device" in state.detail
        assert db_counts(dsn, DEVICE)["rows"] == 3
        assert unsynced_ids(data) == set(old)
    finally:
        assert worker.stop() is True
        server.close()


def test_the_load_tests_thumbnail_is_the_one_a_device_makes_of_the_first_sample() -> None:
    """The collector ships a fixed thumbnail (it cannot import the device's OpenCV code): it must not drift."""
    from appliance.sync import make_thumbnail
    from leaf_collector.loadtest import sample_thumbnail

    assert make_thumbnail(sample_paths()[0].read_bytes()) == sample_thumbnail()


def test_a_certificate_rejected_for_its_dates_on_a_1970_clock_says_to_fix_the_clock() -> None:
    """A Pi without network time boots in 1970: the advice to install a CA file was the wrong fix."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    failure = ssl.SSLCertVerificationError(1, "certificate verify failed")
    failure.verify_code, failure.verify_message = 9, "certificate is not yet valid"
    wrong_clock = CollectorClient("https://base.example.org", "leaf_x", clock=lambda: epoch)
    message = str(wrong_clock._connection_error(failure, sent=False))
    assert "clock says 1970-01-01" in message and "ca_file" not in message
    right_clock = CollectorClient("https://base.example.org", "leaf_x")
    assert "sync.ca_file" in str(right_clock._connection_error(failure, sent=False))
    failure.verify_code = 19  # self-signed certificate: a CA file is the fix, whatever the clock says
    assert "sync.ca_file" in str(wrong_clock._connection_error(failure, sent=False))
