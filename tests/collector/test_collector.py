"""The collector against a real PostgreSQL over loopback HTTP: storage, idempotence, auth, limits, page, CLI."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import uuid
from typing import Any

import pytest

from leaf_collector.db import CSV_COLUMNS
from leaf_collector.ratelimit import RateLimiter
from leaf_wire import protocol
from tests.helpers.collector import (
    PHOTOS,
    call,
    db_counts,
    in_process_collector,
    issue_token,
    print_counts,
    record,
    require_collector_packages,
)


def push(server, token: str, records: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    status, _, body = call(server.url + protocol.API_PATH, json.dumps(protocol.batch(records)).encode(), token)
    return status, json.loads(body)


# ---------------------------------------------------------------- storing, exactly once


def test_a_batch_is_stored_and_a_replay_changes_nothing(collector, dsn: str) -> None:
    token = issue_token(dsn, "pi-01")
    records = [record("pi-01", n) for n in range(25)]
    status, first = push(collector, token, records)
    assert status == 200
    assert [r["id"] for r in first["results"]] == [r["id"] for r in records]
    assert {r["status"] for r in first["results"]} == {"stored"}
    assert (first["stored"], first["duplicates"]) == (25, 0)

    status, replay = push(collector, token, records)
    assert status == 200
    assert {r["status"] for r in replay["results"]} == {"duplicate"}
    assert (replay["stored"], replay["duplicates"]) == (0, 25)
    counts = print_counts("replayed batch", 25, dsn, "pi-01", replay["duplicates"])
    assert counts["rows"] == 25
    assert counts["duplicate_rows"] == 0


def test_the_same_id_twice_in_one_batch_is_stored_once_and_acknowledged_twice(collector, dsn: str) -> None:
    token = issue_token(dsn, "pi-01")
    one = record("pi-01")
    status, reply = push(collector, token, [one, record("pi-01", 1), one])
    assert status == 200
    assert [r["status"] for r in reply["results"]] == ["stored", "stored", "duplicate"]
    assert db_counts(dsn)["rows"] == 2


def test_stored_values_round_trip_into_postgres(collector, dsn: str) -> None:
    from leaf_collector.db import connect

    token = issue_token(dsn, "pi-01")
    sent = record("pi-01", crop="Maïs", condition="Rouille commune", extra_field={"future": 1})
    assert push(collector, token, [sent])[0] == 200
    with connect(dsn) as conn:
        row = conn.execute(
            "SELECT crop, condition, top1_probability, topk, extra, created_at FROM diagnoses WHERE id = %s",
            (sent["id"],),
        ).fetchone()
    assert row[0:3] == ("Maïs", "Rouille commune", 0.91)
    assert row[3] == sent["topk"]
    assert row[4] == {"extra_field": {"future": 1}}  # unknown keys are kept, not refused
    assert row[5].isoformat().startswith("2025-06-01T10:00:00")


def test_photos_are_stored_and_a_full_photo_must_match_its_sha256(collector, dsn: str) -> None:
    token = issue_token(dsn, "pi-01")
    photo = PHOTOS[0]
    good = record(
        "pi-01",
        photo_sha256=hashlib.sha256(photo).hexdigest(),
        photo_jpeg_b64=base64.b64encode(photo).decode(),
        thumbnail_jpeg_b64=base64.b64encode(PHOTOS[1]).decode(),
    )
    bad = record("pi-01", 1, photo_sha256="0" * 64, photo_jpeg_b64=base64.b64encode(photo).decode())
    status, reply = push(collector, token, [good, bad])
    assert status == 400
    assert reply["errors"] == [{"index": 1, "id": bad["id"], "reason": reply["errors"][0]["reason"]}]
    assert "SHA-256" in reply["errors"][0]["reason"]
    assert db_counts(dsn)["rows"] == 0  # all or nothing

    assert push(collector, token, [good])[0] == 200
    assert call(f"{collector.url}/photos/{good['id']}/photo.jpg")[0] == 401  # full photos: a session or its device
    status, headers, body = call(f"{collector.url}/photos/{good['id']}/photo.jpg", token=token)
    assert (status, headers["Content-Type"], body) == (200, "image/jpeg", photo)
    status, _, body = call(f"{collector.url}/photos/{good['id']}/thumbnail.jpg")
    assert (status, body) == (200, PHOTOS[1])
    assert call(f"{collector.url}/photos/{uuid.uuid4()}/photo.jpg", token=token)[0] == 403  # not its record


# ---------------------------------------------------------------- who may send


def test_missing_wrong_and_revoked_tokens_are_refused_and_store_nothing(collector, dsn: str) -> None:
    from leaf_collector import tokens
    from leaf_collector.db import connect

    token = issue_token(dsn, "pi-01")
    body = json.dumps(protocol.batch([record("pi-01")])).encode()
    for bad in (None, "leaf_not-a-real-token", token.upper()):
        status, headers, _ = call(collector.url + protocol.API_PATH, body, bad)
        assert status == 401
        assert headers["WWW-Authenticate"].startswith("Bearer")
    with connect(dsn) as conn:
        assert tokens.revoke(conn, "pi-01")
    status, _, reply = call(collector.url + protocol.API_PATH, body, token)
    assert status == 401
    assert "revoked" in json.loads(reply)["error"]
    assert db_counts(dsn)["rows"] == 0


def test_a_record_from_another_device_is_refused(collector, dsn: str) -> None:
    token = issue_token(dsn, "pi-01")
    status, reply = push(collector, token, [record("pi-01"), record("pi-02", 1)])
    assert status == 400
    assert reply["errors"][0]["index"] == 1
    assert "does not match this token's device 'pi-01'" in reply["errors"][0]["reason"]
    assert db_counts(dsn)["rows"] == 0


def test_an_id_stored_for_another_device_is_refused_and_the_batch_rolled_back(collector, dsn: str) -> None:
    first, second = issue_token(dsn, "pi-01"), issue_token(dsn, "pi-02")
    taken = record("pi-01")
    assert push(collector, first, [taken])[0] == 200
    stolen = dict(taken, device_id="pi-02")
    status, reply = push(collector, second, [record("pi-02", 1), stolen])
    assert status == 400
    assert reply["errors"] == [
        {"index": 1, "id": taken["id"], "reason": "this id is already stored for another device"}
    ]
    assert db_counts(dsn, "pi-02")["rows"] == 0
    assert db_counts(dsn, "pi-01")["rows"] == 1


# ---------------------------------------------------------------- bad input and limits


def test_malformed_json_and_wrong_shapes_get_400_with_the_reason(collector, dsn: str) -> None:
    token = issue_token(dsn, "pi-01")
    url = collector.url + protocol.API_PATH
    cases = {
        b'{"schema": 1, "records": [': "not JSON",
        b"\xff\xfe": "not UTF-8",
        b'{"records": []}': "unsupported schema",
        b'{"schema": 1, "records": {}}': "must be a JSON object",
        json.dumps(protocol.batch([record("pi-01")] * 1001)).encode(): "at most 1000",
    }
    for body, reason in cases.items():
        status, _, reply = call(url, body, token)
        assert status == 400, body[:40]
        assert reason in json.loads(reply)["error"]
    assert db_counts(dsn)["rows"] == 0


def test_every_malformed_record_is_named_and_nothing_is_stored(collector, dsn: str) -> None:
    token = issue_token(dsn, "pi-01")
    good = record("pi-01")
    bad = [
        record("pi-01", 1, id="not-a-uuid"),
        record("pi-01", 2, created_at="2025-06-01T10:00:00"),
        record("pi-01", 3, verdict="maybe"),
        record("pi-01", 4, top1_probability=1.5),
        record("pi-01", 5, topk="[]"),
        record("pi-01", 6, thumbnail_jpeg_b64=base64.b64encode(b"GIF89a...").decode()),
        "just a string",
    ]
    status, reply = push(collector, token, [good, *bad])
    assert status == 400
    assert reply["error"] == "7 of 8 records refused; nothing was stored"
    reasons = {e["index"]: e["reason"] for e in reply["errors"]}
    assert sorted(reasons) == [1, 2, 3, 4, 5, 6, 7]
    assert "not a UUID" in reasons[1]
    assert "no time zone" in reasons[2]
    assert "verdict" in reasons[3]
    assert "between 0 and 1" in reasons[4]
    assert "topk must be a JSON array" in reasons[5]
    assert "not a JPEG" in reasons[6]
    assert "JSON object" in reasons[7]
    assert db_counts(dsn)["rows"] == 0


def test_values_postgresql_cannot_store_get_400_not_500(collector, dsn: str) -> None:
    """NaN, a bigint overflow, a lone surrogate reached PostgreSQL and came back as 500s."""
    token = issue_token(dsn, "pi-01")
    bad = [
        record("pi-01", 1, quality={"brightness": float("nan")}),
        record("pi-01", 2, photo_bytes=2**63),
        record("pi-01", 3, crop="\ud800"),
    ]
    for one in bad:
        status, reply = push(collector, token, [record("pi-01"), one])
        assert status == 400 and reply["errors"][0]["index"] == 1, reply
    status, _, reply = call(collector.url + protocol.API_PATH, b'{"schema": true, "records": []}', token)
    assert status == 400 and "unsupported schema" in json.loads(reply)["error"]
    assert db_counts(dsn)["rows"] == 0


def test_an_oversized_batch_gets_413_with_the_limit_before_anything_is_stored(dsn: str) -> None:
    server = in_process_collector(dsn, max_request_bytes=20_000)
    try:
        token = issue_token(dsn, "pi-01")
        status, reply = push(server, token, [record("pi-01", n) for n in range(60)])
        assert status == 413
        assert reply["max_bytes"] == 20_000
        assert push(server, token, [record("pi-01")])[0] == 200
        assert db_counts(dsn)["rows"] == 1
    finally:
        server.close()


def test_a_device_over_its_request_budget_gets_429_with_retry_after(dsn: str) -> None:
    server = in_process_collector(dsn, rate_per_minute=1, burst=2)
    try:
        token, other = issue_token(dsn, "pi-01"), issue_token(dsn, "pi-02")
        assert push(server, token, [record("pi-01")])[0] == 200
        assert push(server, token, [record("pi-01")])[0] == 200
        status, headers, body = call(server.url + protocol.API_PATH, b"{}", token)
        assert status == 429
        assert 1 <= int(headers["Retry-After"]) <= 60
        assert "too many requests" in json.loads(body)["error"]
        assert push(server, other, [record("pi-02")])[0] == 200  # budgets are per device
        assert db_counts(dsn)["rows"] == 3
    finally:
        server.close()


def test_rate_limiter_refills_at_its_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=2, clock=lambda: now[0])
    assert [limiter.take("a"), limiter.take("a")] == [0, 0]
    assert limiter.take("a") == 1
    now[0] += 1.0
    assert limiter.take("a") == 0
    assert limiter.take("b") == 0


def test_wrong_methods_and_paths(collector, dsn: str) -> None:
    token = issue_token(dsn, "pi-01")
    status, headers, _ = call(collector.url + protocol.API_PATH, token=token)
    assert (status, headers["Allow"]) == (405, "POST")
    assert call(collector.url + "/api/v1/nothing", token=token)[0] == 404
    assert call(collector.url + "/", b"x", method="POST")[0] == 405
    assert call(collector.url + "/nothing")[0] == 404
    status, _, body = call(collector.url + protocol.WHOAMI_PATH, token=token)
    assert (status, json.loads(body)["device_id"]) == (200, "pi-01")
    assert call(collector.url + protocol.HEALTH_PATH)[0] == 200


# ---------------------------------------------------------------- the agronomist's page and CSV


def test_page_shows_counts_by_crop_condition_device_and_day(collector, dsn: str) -> None:
    token = issue_token(dsn, "pi-01")
    records = [record("pi-01", n, crop="Tomato" if n < 3 else "Potato") for n in range(5)]
    records.append(record("pi-01", 9, verdict="retake", reason="blurred", crop="", condition=""))
    records[0]["condition"] = "<script>alert(1)</script>"
    records[0]["thumbnail_jpeg_b64"] = base64.b64encode(PHOTOS[0]).decode()
    assert push(collector, token, records)[0] == 200
    status, headers, body = call(collector.url + "/?days=100000")
    html = body.decode()
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert '<div id="total-diagnoses"><b>6</b>' in html
    assert '<div id="total-retakes"><b>1</b>' in html
    assert "<td>Tomato</td><td class=n>3</td>" in html
    assert "<td>Potato</td><td class=n>2</td>" in html
    assert "<td>pi-01</td><td class=n>6</td><td class=n>1</td>" in html
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert f'src="photos/{records[0]["id"]}/thumbnail.jpg"' in html
    assert 'href="diagnoses.csv"' in html


def test_csv_has_a_bom_iso_times_every_record_and_defused_formulas(collector, dsn: str) -> None:
    token = issue_token(dsn, "pi-01")
    records = [record("pi-01", n) for n in range(3)]
    records[1]["condition"] = '=HYPERLINK("http://evil")'
    records[2].update(crop="Maïs", condition="Rouille")
    assert push(collector, token, records)[0] == 200
    status, headers, body = call(collector.url + "/diagnoses.csv")
    assert status == 200
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert headers["Content-Disposition"].startswith('attachment; filename="leaf-diagnoses-')
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert [r["id"] for r in rows] == [r["id"] for r in records]  # oldest first
    assert rows[0]["created_at"] == "2025-06-01T10:00:00.000Z"
    assert rows[1]["condition"] == '\'=HYPERLINK("http://evil")'
    assert (rows[2]["crop"], rows[2]["condition"]) == ("Maïs", "Rouille")
    assert rows[0]["top1_probability"] == "0.9100"
    assert rows[0]["received_at"].endswith("Z")


def test_empty_database_page_and_csv(collector) -> None:
    status, _, body = call(collector.url + "/")
    assert status == 200
    assert "No device enrolled yet" in body.decode()
    status, _, body = call(collector.url + "/diagnoses.csv")
    assert status == 200
    assert body.decode("utf-8-sig").splitlines() == [",".join(CSV_COLUMNS)]


# ---------------------------------------------------------------- CLI and migrations


def test_token_cli_issues_lists_and_revokes(dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    from leaf_collector.cli import main
    from leaf_collector.tokens import token_hash

    assert main(["token", "issue", "pi-07", "--dsn", dsn]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("leaf_") and len(token) > 40
    from leaf_collector.db import connect

    with connect(dsn) as conn:
        stored = conn.execute("SELECT token_sha256 FROM devices WHERE device_id = 'pi-07'").fetchone()[0]
    assert stored == token_hash(token) and token not in stored  # only the hash is kept

    assert main(["token", "list", "--dsn", dsn]) == 0
    listing = capsys.readouterr().out
    assert "pi-07" in listing and "active" in listing

    assert main(["token", "revoke", "pi-07", "--dsn", dsn]) == 0
    assert main(["token", "revoke", "pi-07", "--dsn", dsn]) == 1
    capsys.readouterr()
    assert main(["token", "list", "--dsn", dsn]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["token", "issue", "bad id!", "--dsn", dsn]) == 2
    assert "must be 1-64 characters" in capsys.readouterr().err


def test_migrations_are_idempotent_and_a_newer_schema_is_refused(dsn: str, capsys) -> None:
    from leaf_collector.cli import main
    from leaf_collector.db import connect, migrate

    assert migrate(dsn) == []
    assert main(["migrate", "--dsn", dsn]) == 0
    assert "nothing to do" in capsys.readouterr().out
    with connect(dsn) as conn:
        conn.execute("INSERT INTO collector_schema_migrations (version, description) VALUES (99, 'future')")
    assert main(["migrate", "--dsn", dsn]) == 2
    assert "newer than this collector knows" in capsys.readouterr().err


def test_unreachable_database_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    require_collector_packages()
    from leaf_collector.cli import main
    from leaf_collector.throwaway import free_loopback_port

    port = free_loopback_port()
    assert main(["migrate", "--dsn", f"postgresql://x:y@127.0.0.1:{port}/db"]) == 2
    err = capsys.readouterr().err
    assert "cannot connect to PostgreSQL" in err and "y@" not in err  # no password in the message


def test_every_module_imports_without_the_collector_packages() -> None:
    """The Pi has no psycopg or waitress: appliance.sync and the whole collector package must still import."""
    import subprocess
    import sys

    script = """
import importlib, pkgutil, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("psycopg", "psycopg_pool", "waitress"):
            raise ImportError(f"blocked: {name}")
sys.meta_path.insert(0, Block())
import leaf_collector, appliance.sync
for m in pkgutil.iter_modules(leaf_collector.__path__):
    if m.name != "__main__":
        importlib.import_module(f"leaf_collector.{m.name}")
from leaf_collector.cli import main
sys.exit(main(["serve", "--dsn", "postgresql://x@127.0.0.1/x"]))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "pip install ./leaf_collector" in result.stderr


def test_a_device_clock_that_cannot_be_right_is_flagged_and_sorted_by_arrival(collector, dsn: str) -> None:
    """A Pi at 2099 topped "Latest" forever and one at 1970 never appeared; both are kept as sent."""
    token = issue_token(dsn, "pi-01")
    future = record("pi-01", 1, created_at="2099-01-01T00:00:00.000Z", crop="Future")
    past = record("pi-01", 2, created_at="1970-01-01T00:00:00.000Z", crop="Past")
    normal = [record("pi-01", 3, created_at=f"2026-11-3{n}T10:00:00.000Z", crop=f"Now{n}") for n in (0,)]
    assert push(collector, token, [future, past, *normal])[0] == 200
    status, _, body = call(collector.url + "/")
    html = body.decode()
    latest = html[html.index('id="latest"') :]
    assert status == 200 and latest.count("device clock wrong") == 2
    assert "2099-01-01T00:00:00.000Z" in latest and "1970-01-01T00:00:00.000Z" in latest  # kept as sent
    # sorted by arrival: both just arrived, so both come before the record from 30 November
    assert max(latest.index("Future"), latest.index("Past")) < latest.index("Now0")
    status, _, body = call(collector.url + "/diagnoses.csv")
    rows = {r["crop"]: r for r in csv.DictReader(io.StringIO(body.decode("utf-8-sig")))}
    assert (rows["Future"]["clock_suspect"], rows["Past"]["clock_suspect"], rows["Now0"]["clock_suspect"]) == (
        "true",
        "true",
        "false",
    )
    assert rows["Future"]["created_at"].startswith("2099-01-01")
