"""Full field photos reaching base: PUT/HEAD /api/v1/photos/<sha256> on a real collector, real PostgreSQL
and a real photo folder; the device's client methods against it; inline photos of older devices; quotas."""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from leaf_wire import protocol
from tests.helpers.collector import (
    PHOTOS,
    call,
    db_counts,
    in_process_collector,
    issue_token,
    record,
)


def sha(data: bytes) -> str:
    return protocol.sha256_hex(data)


def send(server, token: str | None, name: str, data: bytes | None = None, method: str = "PUT"):
    """One photo request as a device makes it: (status, headers, JSON body or None)."""
    request = urllib.request.Request(server.url + protocol.PHOTOS_PATH + name, data=data, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "image/jpeg")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        status, headers, raw = exc.code, exc.headers, exc.read()
    return status, headers, json.loads(raw) if raw else None


def push(server, token: str, records: list[dict[str, Any]]) -> int:
    status, _, _ = call(server.url + protocol.API_PATH, json.dumps(protocol.batch(records)).encode(), token)
    return status


def recorded(server, token: str, device_id: str, data: bytes, n: int = 0) -> str:
    """Send the record that names `data` as its photo (what a device does before the photo)."""
    assert push(server, token, [record(device_id, n, photo_sha256=sha(data), photo_bytes=len(data))]) == 200
    return sha(data)


def files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def field_rows(dsn: str) -> list[tuple[str, int, str]]:
    from leaf_collector.db import connect

    with connect(dsn) as conn:
        return [tuple(r) for r in conn.execute("SELECT sha256, bytes, device_id FROM field_photos ORDER BY sha256")]


def padded(sample: bytes, size: int) -> bytes:
    """A sample JPEG grown to `size` bytes (decoders stop at the end-of-image marker), to fill a quota quickly."""
    return sample + b"\0" * (size - len(sample))


def quota_cli(dsn: str, *args: str) -> int:
    from leaf_collector.cli import main

    return main(["device", "quota", *args, "--dsn", dsn])


# ---------------------------------------------------------------- stored once, by checksum


def test_a_photo_is_stored_once_on_disk_by_checksum_and_a_resend_is_a_duplicate(collector, dsn: str) -> None:
    token = issue_token(dsn, "pi-01")
    photo = PHOTOS[0]
    name = recorded(collector, token, "pi-01", photo)
    root = collector.app.photos.root

    status, _, body = send(collector, token, name, photo)
    assert (status, body) == (201, {"status": "stored"})
    target = root / name[:2] / name[2:4] / f"{name}.jpg"
    assert files(root) == [target]  # no temporary file left beside it
    assert target.read_bytes() == photo
    assert field_rows(dsn) == [(name, len(photo), "pi-01")]
    written = target.stat()

    status, _, body = send(collector, token, name, photo)
    assert (status, body) == (200, {"status": "duplicate"})
    again = target.stat()
    assert (again.st_ino, again.st_mtime_ns) == (written.st_ino, written.st_mtime_ns)  # not written twice
    assert files(root) == [target]
    assert field_rows(dsn) == [(name, len(photo), "pi-01")]
    assert db_counts(dsn, "pi-01")["full_photos"] == 1


def test_the_same_bytes_from_a_second_device_are_one_file_one_row_charged_to_the_first(collector, dsn: str) -> None:
    from leaf_wire.client import CollectorClient

    first, second = issue_token(dsn, "pi-01"), issue_token(dsn, "pi-02")
    photo = PHOTOS[1]
    name = recorded(collector, first, "pi-01", photo)
    recorded(collector, second, "pi-02", photo)
    assert send(collector, first, name, photo)[0] == 201
    status, _, body = send(collector, second, name, photo)
    assert (status, body) == (200, {"status": "duplicate"})
    assert len(files(collector.app.photos.root)) == 1
    assert field_rows(dsn) == [(name, len(photo), "pi-01")]
    assert CollectorClient(collector.url, first).whoami().photo_used_bytes == len(photo)
    assert CollectorClient(collector.url, second).whoami().photo_used_bytes == 0


def test_devices_racing_with_the_same_bytes_get_one_stored_the_rest_duplicates(collector, dsn: str) -> None:
    devices = [f"pi-{n:02d}" for n in range(1, 5)]
    photo = PHOTOS[2]
    tokens = {d: issue_token(dsn, d) for d in devices}
    for n, device in enumerate(devices):
        recorded(collector, tokens[device], device, photo, n)
    start = threading.Barrier(len(devices))
    statuses: list[int] = []

    def upload(device: str) -> None:
        start.wait()
        statuses.append(send(collector, tokens[device], sha(photo), photo)[0])

    threads = [threading.Thread(target=upload, args=(d,)) for d in devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert sorted(statuses) == [200, 200, 200, 201]
    assert len(files(collector.app.photos.root)) == 1
    assert len(field_rows(dsn)) == 1


# ---------------------------------------------------------------- what is refused


def test_bytes_that_do_not_match_the_name_or_are_not_a_jpeg_are_refused(collector, dsn: str) -> None:
    token = issue_token(dsn, "pi-01")
    name = recorded(collector, token, "pi-01", PHOTOS[0])
    status, _, body = send(collector, token, name, PHOTOS[3])
    assert status == 400
    assert f"sha256 is {sha(PHOTOS[3])}, not the one in the path" in body["error"]

    not_jpeg = b"GIF89a" + PHOTOS[0][6:]
    recorded(collector, token, "pi-01", not_jpeg, 1)
    status, _, body = send(collector, token, sha(not_jpeg), not_jpeg)
    assert status == 400
    assert "not a JPEG" in body["error"]
    assert files(collector.app.photos.root) == []
    assert field_rows(dsn) == []


def test_a_photo_no_record_of_this_device_names_is_not_taken(collector, dsn: str) -> None:
    mine, theirs = issue_token(dsn, "pi-01"), issue_token(dsn, "pi-02")
    photo = PHOTOS[4]
    status, _, body = send(collector, mine, sha(photo), photo)
    assert status == 404
    assert "send the record first" in body["error"]

    recorded(collector, theirs, "pi-02", photo)  # another device's record does not count
    status, _, body = send(collector, mine, sha(photo), photo)
    assert status == 404
    assert "send the record first" in body["error"]
    assert files(collector.app.photos.root) == []
    assert field_rows(dsn) == []


@pytest.mark.parametrize("name", ["ABCDEF" + "0" * 58, "0" * 63, "0" * 64 + ".jpg", "../" + "0" * 61])
def test_a_name_that_is_not_a_sha256_is_not_found(collector, dsn: str, name: str) -> None:
    token = issue_token(dsn, "pi-01")
    status, _, body = send(collector, token, name, PHOTOS[0])
    assert status == 404
    assert "64 lower-case hex digits" in body["error"]


def test_without_a_valid_token_nothing_is_taken_or_confirmed(collector, dsn: str) -> None:
    token = issue_token(dsn, "pi-01")
    photo = PHOTOS[0]
    name = recorded(collector, token, "pi-01", photo)
    for bad in (None, "leaf_not-a-real-token"):
        status, headers, _ = send(collector, bad, name, photo)
        assert status == 401
        assert headers["WWW-Authenticate"].startswith("Bearer")
        assert send(collector, bad, name, method="HEAD")[0] == 401
    assert files(collector.app.photos.root) == []


def test_the_token_comes_before_the_request_budget_and_the_budget_before_the_name(dsn: str) -> None:
    server = in_process_collector(dsn, burst=2, rate_per_minute=0.01)
    try:
        token = issue_token(dsn, "pi-01")
        assert send(server, token, "nope", PHOTOS[0])[0] == 404
        assert send(server, token, "nope", PHOTOS[0])[0] == 404
        status, headers, _ = send(server, token, "nope", PHOTOS[0])
        assert status == 429
        assert int(headers["Retry-After"]) > 0
        assert send(server, None, "nope", PHOTOS[0])[0] == 401
    finally:
        server.close()


def test_a_photo_larger_than_the_collector_takes_is_refused_with_the_limit(dsn: str) -> None:
    server = in_process_collector(dsn, max_request_bytes=20_000)
    try:
        token = issue_token(dsn, "pi-01")
        big = PHOTOS[5]  # 24,541 bytes
        name = recorded(server, token, "pi-01", big)
        status, _, body = send(server, token, name, big)
        assert status == 413
        assert body["max_bytes"] == 20_000
        assert "the photo is 24541 bytes" in body["error"]
        assert files(server.app.photos.root) == []
    finally:
        server.close()


# ---------------------------------------------------------------- HEAD


def test_head_says_whether_base_has_a_photo_of_this_device_only(collector, dsn: str) -> None:
    mine, theirs = issue_token(dsn, "pi-01"), issue_token(dsn, "pi-02")
    photo = PHOTOS[6]
    name = recorded(collector, mine, "pi-01", photo)
    assert send(collector, mine, name, method="HEAD")[0] == 404
    assert send(collector, mine, name, photo)[0] == 201
    status, _, body = send(collector, mine, name, method="HEAD")
    assert (status, body) == (200, None)
    # Base has it, but pi-02 has no record naming it: a token cannot probe for other devices' photos.
    assert send(collector, theirs, name, method="HEAD")[0] == 404
    recorded(collector, theirs, "pi-02", photo)
    assert send(collector, theirs, name, method="HEAD")[0] == 200


# ---------------------------------------------------------------- quotas


def test_a_full_quota_answers_507_until_the_cli_raises_it(dsn: str, capsys) -> None:
    from leaf_wire.client import CollectorClient

    server = in_process_collector(dsn, photo_quota_mb=1)
    try:
        token = issue_token(dsn, "pi-01")
        first, second = padded(PHOTOS[0], 700_000), padded(PHOTOS[1], 700_000)
        recorded(server, token, "pi-01", first)
        recorded(server, token, "pi-01", second, 1)
        assert send(server, token, sha(first), first)[0] == 201
        status, _, body = send(server, token, sha(second), second)
        assert status == 507
        assert (body["quota_bytes"], body["used_bytes"]) == (1024 * 1024, 700_000)
        assert "quota at base is full" in body["error"]
        assert not (server.app.photos.root / sha(second)[:2] / sha(second)[2:4] / f"{sha(second)}.jpg").exists()
        info = CollectorClient(server.url, token).whoami()
        assert (info.photo_quota_bytes, info.photo_used_bytes) == (1024 * 1024, 700_000)

        assert quota_cli(dsn, "pi-01", "2") == 0
        assert "pi-01: photo quota 2 MB (its own); 0.7 MB used" in capsys.readouterr().out
        assert send(server, token, sha(second), second)[0] == 201

        assert quota_cli(dsn, "pi-01", "--default", "--collector-default-mb", "1") == 0
        assert "photo quota 1 MB (the collector's default" in capsys.readouterr().out
        third = padded(PHOTOS[2], 100)
        recorded(server, token, "pi-01", third, 2)
        assert send(server, token, sha(third), third)[0] == 507
        # A photo base already has is never charged again, quota or not:
        assert send(server, token, sha(first), first)[0] == 200
    finally:
        server.close()


def test_two_uploads_at_once_cannot_both_slip_under_the_quota(dsn: str) -> None:
    server = in_process_collector(dsn, photo_quota_mb=1)
    try:
        token = issue_token(dsn, "pi-01")
        photos = [padded(PHOTOS[n], 600_000) for n in range(4)]
        for n, photo in enumerate(photos):
            recorded(server, token, "pi-01", photo, n)
        start = threading.Barrier(len(photos))
        statuses: list[int] = []

        def upload(photo: bytes) -> None:
            start.wait()
            statuses.append(send(server, token, sha(photo), photo)[0])

        threads = [threading.Thread(target=upload, args=(p,)) for p in photos]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
        assert sorted(statuses) == [201, 507, 507, 507]
        assert [r[1] for r in field_rows(dsn)] == [600_000]
    finally:
        server.close()


def test_the_quota_command_refuses_what_it_cannot_do(dsn: str, capsys) -> None:
    from leaf_collector.app import Limits
    from leaf_collector.cli import _DEFAULT_QUOTA_MB

    assert Limits().photo_quota_mb == _DEFAULT_QUOTA_MB
    issue_token(dsn, "pi-01")
    assert quota_cli(dsn, "pi-09", "5") == 1
    assert "no device 'pi-09'" in capsys.readouterr().err
    assert quota_cli(dsn, "pi-01", "-1") == 2
    assert "0 or more" in capsys.readouterr().err
    assert quota_cli(dsn, "pi-01", "5", "--default") == 2
    assert "not both" in capsys.readouterr().err
    assert quota_cli(dsn, "pi-01") == 0
    assert "pi-01: photo quota 2048 MB (the collector's default" in capsys.readouterr().out


# ---------------------------------------------------------------- the photo store failing, damaged files


def test_a_photo_store_that_cannot_write_answers_503_and_no_row_names_a_missing_file(collector, dsn: str) -> None:
    token = issue_token(dsn, "pi-01")
    photo = PHOTOS[7]
    name = recorded(collector, token, "pi-01", photo)
    root: Path = collector.app.photos.root
    root.mkdir(parents=True, exist_ok=True)
    blocker = root / name[:2]
    blocker.write_bytes(b"not a folder")  # the store cannot make its folder, as on a full or broken disk
    status, headers, body = send(collector, token, name, photo)
    assert status == 503
    assert int(headers["Retry-After"]) >= 60
    assert "nothing was stored" in body["error"]
    assert str(root) not in body["error"]  # base's folders stay in base's log
    assert field_rows(dsn) == []
    blocker.unlink()
    assert send(collector, token, name, photo)[0] == 201  # the device simply sends it again later
    assert field_rows(dsn) == [(name, len(photo), "pi-01")]


def test_a_damaged_file_is_reported_not_served(collector, dsn: str) -> None:
    token = issue_token(dsn, "pi-01")
    photo = PHOTOS[8]
    sent = record("pi-01", photo_sha256=sha(photo), photo_bytes=len(photo))
    assert push(collector, token, [sent]) == 200
    assert send(collector, token, sha(photo), photo)[0] == 201
    status, _, body = call(f"{collector.url}/photos/{sent['id']}/photo.jpg", token=token)
    assert (status, body) == (200, photo)
    target = collector.app.photos.path(sha(photo))
    target.write_bytes(photo[:-10] + b"\0" * 10)  # bit rot
    status, _, body = call(f"{collector.url}/photos/{sent['id']}/photo.jpg", token=token)
    assert status == 500
    assert b"damaged" in body
    assert photo[:100] not in body


# ---------------------------------------------------------------- inline photos from older devices


def test_an_inline_full_photo_lands_in_the_photo_store_and_the_thumbnail_stays_in_postgres(collector, dsn: str) -> None:
    from leaf_collector.db import connect

    token = issue_token(dsn, "pi-01")
    photo, thumbnail = PHOTOS[0], PHOTOS[1]
    sent = record(
        "pi-01",
        photo_sha256=sha(photo),
        photo_bytes=len(photo),
        photo_jpeg_b64=base64.b64encode(photo).decode(),
        thumbnail_jpeg_b64=base64.b64encode(thumbnail).decode(),
    )
    twin = dict(record("pi-01", 1), **{k: sent[k] for k in ("photo_sha256", "photo_bytes", "photo_jpeg_b64")})
    assert push(collector, token, [sent, twin]) == 200
    assert files(collector.app.photos.root) == [collector.app.photos.path(sha(photo))]
    assert field_rows(dsn) == [(sha(photo), len(photo), "pi-01")]
    with connect(dsn) as conn:
        kinds = conn.execute("SELECT kind, count(*) FROM photos GROUP BY kind").fetchall()
    assert kinds == [("thumbnail", 1)]  # no full photo kept twice
    assert db_counts(dsn, "pi-01") == {
        "rows": 2,
        "distinct": 2,
        "duplicate_rows": 0,
        "photos": 1,
        "full_photos": 1,
    }
    for rid in (sent["id"], twin["id"]):
        assert call(f"{collector.url}/photos/{rid}/photo.jpg", token=token)[2] == photo
    assert call(f"{collector.url}/photos/{sent['id']}/thumbnail.jpg")[2] == thumbnail
    assert send(collector, token, sha(photo), photo)[:3:2] == (200, {"status": "duplicate"})
    csv_text = call(f"{collector.url}/diagnoses.csv")[2].decode()
    assert csv_text.count(",true,true,") == 1 and csv_text.count(",false,true,") == 1  # has_thumbnail, has_photo


def test_inline_full_photos_beyond_the_quota_are_dropped_but_their_records_are_kept(dsn: str) -> None:
    server = in_process_collector(dsn, photo_quota_mb=0)
    try:
        token = issue_token(dsn, "pi-01")
        photo = PHOTOS[3]
        sent = record(
            "pi-01",
            photo_sha256=sha(photo),
            photo_bytes=len(photo),
            photo_jpeg_b64=base64.b64encode(photo).decode(),
            thumbnail_jpeg_b64=base64.b64encode(PHOTOS[4]).decode(),
        )
        assert push(server, token, [sent]) == 200
        assert db_counts(dsn, "pi-01") == {
            "rows": 1,
            "distinct": 1,
            "duplicate_rows": 0,
            "photos": 1,
            "full_photos": 0,
        }
        assert files(server.app.photos.root) == []
        assert call(f"{server.url}/photos/{sent['id']}/photo.jpg", token=token)[0] == 404
    finally:
        server.close()


def test_full_photos_a_pre_schema_4_collector_kept_in_the_database_move_to_the_store_and_can_be_labelled(
    collector, dsn: str, capsys
) -> None:
    from leaf_collector import labelling
    from leaf_collector.cli import main
    from leaf_collector.db import connect

    token = issue_token(dsn, "pi-old")
    good, other = PHOTOS[0], PHOTOS[2]
    rows = {  # what an older collector kept: the record, and its full photo in the photos table
        "named": (record("pi-old", 0, photo_sha256=sha(good), photo_bytes=len(good)), good, sha(good)),
        "twin": (record("pi-old", 1, photo_sha256=sha(good), photo_bytes=len(good)), good, sha(good)),
        "unnamed": (record("pi-old", 2), other, sha(other)),  # a record from before photo_sha256 was sent
        "damaged": (record("pi-old", 3), good[:-10] + b"\0" * 10, sha(good)),  # bytes changed since
    }
    assert push(collector, token, [r for r, _, _ in rows.values()]) == 200
    with connect(dsn) as conn:
        for sent, data, checksum in rows.values():
            conn.execute(
                "INSERT INTO photos (diagnosis_id, kind, jpeg, sha256) VALUES (%s, 'full', %s, %s)",
                (sent["id"], data, checksum),
            )
        assert labelling.queue(conn, "anyone", 30)[0] == []  # served, but not labellable yet
    root = collector.app.photos.root
    root.mkdir(parents=True, exist_ok=True)  # serve's folder (it exists once any photo has come)
    assert main(["adopt-photos", "--photo-dir", str(root) + "-typo", "--dsn", dsn]) == 2
    assert "nothing was moved" in capsys.readouterr().err and not Path(str(root) + "-typo").exists()

    assert main(["adopt-photos", "--photo-dir", str(root), "--dsn", dsn]) == 1  # one left in place
    out = capsys.readouterr()
    assert "moved from the database into the photo store: 3 (1 of the same bytes" in out.out
    assert f"diagnosis {rows['damaged'][0]['id']} differs from its checksum" in out.err
    assert files(root) == sorted([collector.app.photos.path(sha(good)), collector.app.photos.path(sha(other))])
    assert field_rows(dsn) == sorted([(sha(good), len(good), "pi-old"), (sha(other), len(other), "pi-old")])
    with connect(dsn) as conn:
        left = conn.execute("SELECT diagnosis_id::text FROM photos WHERE kind = 'full'").fetchall()
        named = conn.execute("SELECT photo_sha256 FROM diagnoses WHERE id = %s", (rows["unnamed"][0]["id"],)).fetchone()
        queued = {item["sha256"] for item in labelling.queue(conn, "anyone", 30)[0]}
    assert left == [(rows["damaged"][0]["id"],)] and named == (sha(other),)
    assert queued == {sha(good), sha(other)}  # the agronomist can label them now
    for key in ("named", "twin", "unnamed"):
        assert call(f"{collector.url}/photos/{rows[key][0]['id']}/photo.jpg", token=token)[2] == rows[key][1]
    assert call(f"{collector.url}/photos/{rows['damaged'][0]['id']}/photo.jpg", token=token)[0] == 200  # as before

    assert main(["adopt-photos", "--photo-dir", str(root), "--dsn", dsn]) == 1  # again: nothing more to move
    assert "into the photo store: 0 (0 of the same bytes" in capsys.readouterr().out


# ---------------------------------------------------------------- the device's client


def test_the_clients_photo_methods_return_and_raise_as_documented(dsn: str) -> None:
    from leaf_collector.throwaway import free_loopback_port
    from leaf_wire.client import (
        BatchTooLarge,
        CollectorBusy,
        CollectorClient,
        CollectorUnreachable,
        PhotoNotWanted,
        PhotoQuotaFull,
        PhotoRefused,
        PhotoTooLarge,
        TokenRefused,
    )

    server = in_process_collector(dsn, photo_quota_mb=1, max_request_bytes=800_000)
    try:
        token = issue_token(dsn, "pi-01")
        client = CollectorClient(server.url, token)
        photo = PHOTOS[0]
        name = sha(photo)
        with pytest.raises(PhotoNotWanted, match="send the record first"):
            client.put_photo(name, photo)
        recorded(server, token, "pi-01", photo)
        assert client.has_photo(name) is False
        assert client.put_photo(name, photo) == protocol.STORED
        assert client.put_photo(name, photo) == protocol.DUPLICATE
        assert client.has_photo(name) is True

        with pytest.raises(PhotoRefused) as refused:
            client.put_photo(name, PHOTOS[1])
        assert "not the one in the path" in refused.value.reason
        assert refused.value.transient is False
        with pytest.raises(ValueError, match="64 lower-case hex"):
            client.put_photo(name.upper(), photo)

        big = padded(PHOTOS[1], 900_000)
        recorded(server, token, "pi-01", big, 1)
        with pytest.raises(PhotoTooLarge) as too_large:
            client.put_photo(sha(big), big)
        assert isinstance(too_large.value, BatchTooLarge)
        assert too_large.value.max_bytes == 800_000

        fills = padded(PHOTOS[2], 700_000)
        over = padded(PHOTOS[3], 700_000)
        recorded(server, token, "pi-01", fills, 2)
        recorded(server, token, "pi-01", over, 3)
        assert client.put_photo(sha(fills), fills) == protocol.STORED
        with pytest.raises(PhotoQuotaFull) as full:
            client.put_photo(sha(over), over)
        assert (full.value.quota_bytes, full.value.used_bytes) == (1024 * 1024, 700_000 + len(photo))
        assert full.value.summary == "photo quota full"

        root: Path = server.app.photos.root
        blocked = PHOTOS[4]
        recorded(server, token, "pi-01", blocked, 4)
        (root / sha(blocked)[:2]).write_bytes(b"")
        with pytest.raises(CollectorBusy) as busy:
            client.put_photo(sha(blocked), blocked)
        assert busy.value.retry_after_s >= 60

        with pytest.raises(TokenRefused):
            CollectorClient(server.url, "leaf_wrong").put_photo(name, photo)
        with pytest.raises(TokenRefused):
            CollectorClient(server.url, "leaf_wrong").has_photo(name)
    finally:
        server.close()
    with pytest.raises(CollectorUnreachable):
        CollectorClient(f"http://127.0.0.1:{free_loopback_port()}", token).put_photo(name, photo)
