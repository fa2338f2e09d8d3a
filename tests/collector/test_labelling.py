"""Labelling at base over real HTTP against a real PostgreSQL: sign-in, sessions, CSRF, the queue,
labels, disagreements, and who may fetch a full field photo."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
import tempfile
from pathlib import Path

import pytest

from leaf_collector import passwords
from leaf_collector.loginlimit import LoginThrottle
from tests.helpers.collector import PHOTOS, call, issue_token
from tests.helpers.labelling import Browser, add_account, add_field_photo, backgrounds, labels

PASSWORD = "correct horse battery"


@pytest.fixture
def base(collector, dsn: str):
    """A collector with two devices, two accounts and three field photos of pi-01."""
    tokens = {d: issue_token(dsn, d) for d in ("pi-01", "pi-02")}
    add_account(dsn, "alice")
    add_account(dsn, "bob")
    photos = [
        add_field_photo(collector, dsn, tokens["pi-01"], "pi-01", 0, top1_slug="tomato__late_blight",
                        top1_probability=0.9),
        add_field_photo(collector, dsn, tokens["pi-01"], "pi-01", 1, top1_slug="potato__early_blight", crop="Potato",
                        condition="Early blight", top1_probability=0.6,
                        topk=[{"slug": "potato__early_blight", "probability": 0.6},
                              {"slug": "potato__healthy", "probability": 0.3}]),
        add_field_photo(collector, dsn, tokens["pi-01"], "pi-01", 2, verdict="unknown", reason="unknown_condition",
                        top1_slug="tomato__leaf_mold", top1_probability=0.7, condition=""),
    ]  # fmt: skip
    return collector, tokens, photos


def _ids_in_queue(html: str) -> list[str]:
    return re.findall(r'<section class="photo" id="photo-([0-9a-f]{64})"', html)


# ---------------------------------------------------------------- who may label


def test_no_label_without_a_session_nor_with_a_missing_or_wrong_csrf_token(base, dsn: str) -> None:
    server, _, photos = base
    sha = photos[0]["sha"]
    stranger = Browser(server.url)
    reply = stranger.post(f"/label/{sha}", {"label": "tomato__late_blight", "csrf": "guess"})
    assert reply.status == 401 and "Sign in first" in reply.text
    assert stranger.get("/label").status == 303  # pages send a stranger to the sign-in form

    alice = Browser(server.url)
    assert alice.login("alice").status == 303
    assert alice.post(f"/label/{sha}", {"label": "tomato__late_blight"}).status == 403
    reply = alice.post(f"/label/{sha}", {"label": "tomato__late_blight", "csrf": alice.csrf[:-1] + "x"})
    assert reply.status == 403 and "security token" in reply.text
    bob = Browser(server.url)
    bob.login("bob")
    assert alice.post(f"/label/{sha}", {"label": "tomato__late_blight", "csrf": bob.csrf}).status == 403  # not hers
    assert labels(dsn) == []

    reply = alice.label(sha, "tomato__late_blight")
    assert (reply.status, reply.headers["Location"]) == (303, "/label")
    assert labels(dsn) == [(sha, "alice", "tomato__late_blight")]


def test_a_device_token_never_authorises_a_label(base, dsn: str) -> None:
    server, tokens, photos = base
    device = Browser(server.url)
    reply = device.post(
        f"/label/{photos[0]['sha']}",
        {"label": "not_a_leaf", "csrf": "x"},
        headers={"Authorization": f"Bearer {tokens['pi-01']}"},
    )
    assert reply.status == 401
    assert device.get("/label", headers={"Authorization": f"Bearer {tokens['pi-01']}"}).status == 303
    assert labels(dsn) == []


def test_a_cross_origin_post_is_refused_even_with_session_and_token(base, dsn: str) -> None:
    server, _, photos = base
    alice = Browser(server.url)
    alice.login("alice")
    for origin in ("http://evil.example", "null", "http://127.0.0.1:1"):
        reply = alice.label(photos[0]["sha"], "not_a_leaf", headers={"Origin": origin})
        assert reply.status == 403 and "Refused" in reply.text, origin
    reply = alice.label(photos[0]["sha"], "not_a_leaf", headers={"Sec-Fetch-Site": "cross-site"})
    assert reply.status == 403
    assert labels(dsn) == []
    assert alice.label(photos[0]["sha"], "not_a_leaf", headers={"Origin": server.url}).status == 303
    assert len(labels(dsn)) == 1

    other = Browser(server.url)
    token = re.search(r'name="csrf" value="([^"]+)"', other.get("/login").text).group(1)
    reply = other.post(
        "/login", {"csrf": token, "username": "bob", "password": PASSWORD}, headers={"Origin": "http://evil.example"}
    )
    assert reply.status == 403 and "leaf_session" not in reply.cookies()


def test_sign_in_needs_its_own_csrf_cookie(base) -> None:
    server, _, _ = base
    browser = Browser(server.url)
    browser.get("/login")
    browser.jar.pop("leaf_login_csrf")
    reply = browser.post("/login", {"csrf": "anything", "username": "alice", "password": PASSWORD})
    assert reply.status == 403 and "leaf_session" not in reply.cookies()
    assert "expired" in reply.text


def test_sign_in_is_rate_limited_per_address_and_per_username(base, dsn: str) -> None:
    server, _, _ = base
    browser = Browser(server.url)
    for _ in range(5):
        reply = browser.login("alice", "wrong password!!")
        assert reply.status == 401 and "Wrong username or password" in reply.text
    reply = browser.login("alice")  # the right password, but blocked: a guess teaches nothing
    assert reply.status == 429
    wait = int(reply.headers["Retry-After"])
    assert 880 <= wait <= 900
    assert "Too many failed sign-ins; try again in 15 minutes" in reply.text
    assert browser.login("bob").status == 429  # the same address, another name

    # Behind nginx (trusted), the address is nginx's X-Forwarded-For: one name from many addresses
    proxied = in_process_collector_behind_proxy(dsn)
    try:
        for n in range(5):
            assert Browser(proxied.url).login("bob", "nope nope nope", headers=_from(f"10.0.0.{n}")).status == 401
        assert Browser(proxied.url).login("bob", headers=_from("10.0.1.1")).status == 429
        assert Browser(proxied.url).login("alice", headers=_from("10.0.1.2")).status == 303
    finally:
        proxied.close()


def _from(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


def in_process_collector_behind_proxy(dsn: str):
    from leaf_collector.server import CollectorServer, ServeOptions

    options = ServeOptions(
        dsn=dsn, port=0, threads=2, photo_dir=Path(tempfile.mkdtemp(prefix="leaf-photos-")), trusted_proxy="127.0.0.1"
    )
    server = CollectorServer(options)
    server.start_in_thread()
    return server


def test_login_throttle_forgets_failures_after_its_window() -> None:
    now = [0.0]
    throttle = LoginThrottle(failures=2, window_s=60, clock=lambda: now[0])
    throttle.failed("a")
    now[0] = 10
    throttle.failed("a")
    assert throttle.wait("a") == 50 and throttle.wait("b") == 0
    now[0] = 61
    assert throttle.wait("a") == 0  # the first failure left the window; one more is allowed


def test_names_tried_once_do_not_pile_up_in_the_throttle() -> None:
    from leaf_collector import loginlimit

    now = [0.0]
    throttle = LoginThrottle(failures=5, window_s=60, clock=lambda: now[0])
    for n in range(3 * loginlimit.SWEEP_AT):  # a guesser trying a new name each time, spread over hours
        now[0] = n * 0.5
        throttle.failed(f"user:guess-{n}", f"addr:10.0.{n // 250}.{n % 250}")
    assert throttle.keys_held() <= loginlimit.SWEEP_AT + 2 * 120  # was 24,576: every name and address ever tried
    for _ in range(5):
        throttle.failed("user:alice")
    assert throttle.wait("user:alice") > 0  # a sweep drops only what has left the window


def test_a_disabled_account_loses_its_sessions_and_cannot_sign_in(base, dsn: str, capsys) -> None:
    from leaf_collector.cli import main

    server, _, photos = base
    alice = Browser(server.url)
    alice.login("alice")
    assert alice.get("/label").status == 200
    assert main(["account", "disable", "alice", "--dsn", dsn]) == 0
    assert "disabled alice" in capsys.readouterr().out
    assert alice.get("/label").status == 303
    assert alice.label(photos[0]["sha"], "not_a_leaf").status == 401
    assert Browser(server.url).login("alice").status == 401
    assert main(["account", "disable", "alice", "--dsn", dsn]) == 1
    assert labels(dsn) == []


def test_a_session_ends_after_its_expiry_and_at_sign_out(base, dsn: str) -> None:
    from leaf_collector.db import connect

    server, _, photos = base
    alice, bob = Browser(server.url), Browser(server.url)
    alice.login("alice")
    bob.login("bob")
    with connect(dsn) as conn:
        conn.execute("UPDATE sessions SET expires_at = now() - interval '1 second' WHERE username = 'alice'")
    assert alice.get("/label").status == 303
    assert alice.label(photos[0]["sha"], "not_a_leaf").status == 401

    cookie = bob.jar["leaf_session"]
    reply = bob.post("/logout", {"csrf": bob.csrf})
    assert (reply.status, reply.headers["Location"]) == (303, "/login")
    assert "Max-Age=0" in reply.cookies()["leaf_session"]
    with connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM sessions WHERE username = 'bob'").fetchone()[0] == 0
    replay = Browser(server.url, jar={"leaf_session": cookie})  # the old cookie, kept by someone
    assert replay.get("/label").status == 303


def test_session_cookie_flags_and_only_its_hash_is_stored(base, dsn: str) -> None:
    from leaf_collector.db import connect

    server, _, _ = base
    browser = Browser(server.url)
    reply = browser.login("alice", headers={"X-Forwarded-Proto": "https"})  # not believed: no trusted proxy
    line = reply.cookies()["leaf_session"]
    assert "HttpOnly" in line and "SameSite=Strict" in line and "Path=/;" in line and "Max-Age=43200" in line
    assert "Secure" not in line
    cookie = browser.jar["leaf_session"]
    assert len(cookie) >= 43
    with connect(dsn) as conn:
        stored, hours = conn.execute(
            "SELECT token_sha256, extract(epoch FROM expires_at - created_at) / 3600 FROM sessions"
        ).fetchone()
    assert stored == hashlib.sha256(cookie.encode()).hexdigest()
    assert round(float(hours)) == 12

    proxied = in_process_collector_behind_proxy(dsn)
    try:
        reply = Browser(proxied.url).login("alice", headers={"X-Forwarded-Proto": "https"})
        assert reply.status == 303 and "; Secure" in reply.cookies()["leaf_session"]
    finally:
        proxied.close()


# ---------------------------------------------------------------- full photos


def test_full_photo_urls_need_a_session_or_the_sending_devices_token(base, dsn: str) -> None:
    server, tokens, photos = base
    path = f"/label/photos/{photos[0]['sha']}.jpg"
    status, headers, _ = call(server.url + path)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert call(server.url + path, token="leaf_guessed")[0] == 401
    assert call(server.url + path, token=tokens["pi-02"])[0] == 403  # another device's token
    status, headers, body = call(server.url + path, token=tokens["pi-01"])
    assert (status, headers["Content-Type"], body) == (200, "image/jpeg", photos[0]["data"])
    alice = Browser(server.url)
    alice.login("alice")
    reply = alice.get(path)
    assert (reply.status, reply.body) == (200, photos[0]["data"])
    assert alice.get(f"/label/photos/{'0' * 64}.jpg").status == 404


def test_the_diagnosis_full_photo_route_has_the_same_rule_and_thumbnails_stay_public(base, dsn: str) -> None:
    import json

    from leaf_wire import protocol
    from tests.helpers.collector import record

    server, tokens, _ = base
    photo = PHOTOS[3]
    sha = hashlib.sha256(photo).hexdigest()
    row = record(
        "pi-01",
        5,
        photo_sha256=sha,
        photo_jpeg_b64=base64.b64encode(photo).decode(),
        thumbnail_jpeg_b64=base64.b64encode(PHOTOS[4]).decode(),
    )
    assert call(server.url + protocol.API_PATH, json.dumps(protocol.batch([row])).encode(), tokens["pi-01"])[0] == 200
    server.app.photos.put(sha, photo)  # where the photo store keeps full photos
    full, thumb = f"/photos/{row['id']}/photo.jpg", f"/photos/{row['id']}/thumbnail.jpg"
    assert call(server.url + full)[0] == 401
    assert call(server.url + full, token=tokens["pi-02"])[0] == 403
    assert call(server.url + full, token=tokens["pi-01"])[:3:2] == (200, photo)
    alice = Browser(server.url)
    alice.login("alice")
    assert (alice.get(full).status, alice.get(full).body) == (200, photo)
    assert call(server.url + thumb)[:3:2] == (200, PHOTOS[4])  # the read-only page needs no sign-in


# ---------------------------------------------------------------- the queue, labels, disagreements


def test_the_queue_shows_the_hardest_first_and_what_the_device_said(base, dsn: str) -> None:
    server, tokens, photos = base
    extra = [
        add_field_photo(server, dsn, tokens["pi-02"], "pi-02", 3, verdict="retake", reason="not_sure",
                        top1_slug="tomato__late_blight", top1_probability=0.8, crop="", condition=""),
        add_field_photo(server, dsn, tokens["pi-02"], "pi-02", 4, top1_slug="tomato__late_blight",
                        top1_probability=0.3, crops=["Tomato"]),
        add_field_photo(server, dsn, tokens["pi-02"], "pi-02", 5, verdict="retake", reason="blurred",
                        top1_slug=None, top1_probability=None, crop="", condition=""),
    ]  # fmt: skip
    alice = Browser(server.url)
    alice.login("alice")
    html = alice.get("/label").text
    # not known / not sure first (by confidence), then the lowest confidence (none at all first)
    expected = [photos[2], extra[0], extra[2], extra[1], photos[1], photos[0]]
    assert _ids_in_queue(html) == [p["sha"] for p in expected]
    assert "<b>6</b> unlabelled, <b>0</b> more" in html
    first = html[html.index(photos[2]["sha"]) :]
    assert "not known:" in first[:3000] and "70%" in first[:3000] and "pi-01" in first[:3000]
    assert "every crop" in first[:3000]  # [] = every crop
    assert "Potato: Early blight 60%, Potato: Healthy 30%" in html
    tomato_only = html[html.index(f'id="photo-{extra[1]["sha"]}"') :]
    assert "<dd>Tomato</dd>" in tomato_only[:3000]
    # the class choice: every slug seen (first choices, top-k), grouped by crop, as "Crop: condition"
    assert '<optgroup label="Potato"><option value="potato__early_blight">Potato: Early blight</option>' in html
    assert '<option value="potato__healthy">Potato: Healthy</option>' in html
    assert '<option value="tomato__leaf_mold">Tomato: Leaf mold</option>' in html
    assert 'value="tomato__late_blight" formnovalidate>Confirm: Tomato: Late blight</button>' in html

    assert alice.label(photos[2]["sha"], "tomato__leaf_mold").status == 303
    assert photos[2]["sha"] not in _ids_in_queue(alice.get("/label").text)
    bob = Browser(server.url)
    bob.login("bob")
    queue = bob.get("/label").text
    assert _ids_in_queue(queue)[-1] == photos[2]["sha"]  # a second opinion, after every unlabelled one
    assert "Second opinion: labelled by 1 other" in queue and "<b>5</b> unlabelled, <b>1</b> more" in queue
    assert "alice" not in queue  # who labelled it, and what, stays unseen: it would bias the second opinion


def test_labelling_again_replaces_ones_own_label_and_bad_labels_store_nothing(base, dsn: str) -> None:
    server, _, photos = base
    alice = Browser(server.url)
    alice.login("alice")
    sha = photos[0]["sha"]
    assert alice.label(sha, "tomato__late_blight").status == 303
    assert alice.label(sha, "unusable").status == 303
    assert labels(dsn) == [(sha, "alice", "unusable")]
    reply = alice.label(sha, "mango__anthracnose")  # a slug the collector has never seen
    assert reply.status == 400 and "nothing was stored" in reply.text
    assert alice.label(sha, "<script>").status == 400
    assert alice.label("f" * 64, "unusable").status == 404
    assert labels(dsn) == [(sha, "alice", "unusable")]


def test_the_background_is_stored_with_the_label_replaced_with_it_and_checked(base, dsn: str) -> None:
    server, _, photos = base
    alice = Browser(server.url)
    alice.login("alice")
    sha, other = photos[0]["sha"], photos[1]["sha"]
    queue = alice.get("/label").text
    assert f'id="background-{sha}"' in queue and 'value="natural"' in queue and 'value="plain"' in queue
    assert alice.label(sha, "tomato__late_blight", background="plain").status == 303
    assert alice.label(other, "", chosen="potato__early_blight", background="natural").status == 303  # the select
    assert backgrounds(dsn) == sorted([(sha, "alice", "plain"), (other, "alice", "natural")])
    assert alice.label(sha, "tomato__late_blight").status == 303  # again, not said this time
    assert backgrounds(dsn) == sorted([(sha, "alice", None), (other, "alice", "natural")])
    reply = alice.label(sha, "unusable", background="lab")
    assert reply.status == 400 and "nothing was stored" in reply.text and "natural, plain" in reply.text
    assert alice.label(sha, "", chosen="").status == 400  # "Save this class" with nothing chosen
    assert labels(dsn) == sorted([(sha, "alice", "tomato__late_blight"), (other, "alice", "potato__early_blight")])


def test_the_background_words_are_the_pipelines_backgrounds() -> None:
    from leaf_collector.consensus import BACKGROUNDS
    from leaf_collector.labelling import BACKGROUND_WORDS

    assert tuple(BACKGROUND_WORDS) == BACKGROUNDS


def test_a_v4_database_keeps_its_labels_and_they_say_no_background(postgres, monkeypatch) -> None:
    import uuid

    from leaf_collector import migrations
    from leaf_collector.db import connect, migrate

    url = postgres.create_database(f"t_{uuid.uuid4().hex[:12]}")
    with monkeypatch.context() as patch:
        patch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:4])
        assert migrate(url) == [1, 2, 3, 4]
    sha = "ab" * 32
    with connect(url) as conn:
        conn.execute("INSERT INTO devices (device_id, issued_at) VALUES ('pi-old', now())")
        conn.execute("INSERT INTO field_photos (sha256, bytes, device_id) VALUES (%s, 10, 'pi-old')", (sha,))
        conn.execute("INSERT INTO accounts (username, password_hash) VALUES ('alice', 'x')")
        conn.execute("INSERT INTO labels (photo_sha256, username, label) VALUES (%s, 'alice', 'unusable')", (sha,))
    assert migrate(url) == [5]
    assert backgrounds(url) == [(sha, "alice", None)]
    import psycopg

    with connect(url) as conn, pytest.raises(psycopg.errors.CheckViolation, match="labels_background_check"):
        conn.execute("UPDATE labels SET background = 'lab'")


def test_the_records_csv_says_what_the_labellers_agree_on_and_where_the_leaf_was(base, dsn: str) -> None:
    """The agronomist's spreadsheet: each diagnosis beside the labels its photo got at base."""
    server, _, photos = base
    alice, bob = Browser(server.url), Browser(server.url)
    alice.login("alice")
    bob.login("bob")
    agreed, disputed, unlabelled = (p["sha"] for p in photos)
    alice.label(agreed, "tomato__late_blight", background="natural")
    bob.label(agreed, "tomato__late_blight")  # no background said: no vote
    alice.label(disputed, "potato__early_blight", background="natural")
    bob.label(disputed, "not_a_leaf", background="plain")
    status, _, body = call(server.url + "/diagnoses.csv")
    assert status == 200
    rows = {r["photo_sha256"]: r for r in csv.DictReader(io.StringIO(body.decode("utf-8-sig")))}
    said = {sha: (rows[sha]["labels"], rows[sha]["labelled_as"], rows[sha]["background"]) for sha in rows}
    assert said == {
        agreed: ("2", "tomato__late_blight", "natural"),
        disputed: ("2", "disagreement", ""),
        unlabelled: ("0", "", ""),
    }
    bob.label(disputed, "potato__early_blight", background="natural")
    alice.label(unlabelled, "not_a_leaf")
    body = call(server.url + "/diagnoses.csv")[2]
    rows = {r["photo_sha256"]: r for r in csv.DictReader(io.StringIO(body.decode("utf-8-sig")))}
    assert (rows[disputed]["labelled_as"], rows[disputed]["background"]) == ("potato__early_blight", "natural")
    assert (rows[unlabelled]["labels"], rows[unlabelled]["labelled_as"]) == ("1", "background__no_leaf")


def test_disagreements_show_who_said_what_and_when(base, dsn: str) -> None:
    server, _, photos = base
    alice, bob = Browser(server.url), Browser(server.url)
    alice.login("alice")
    bob.login("bob")
    alice.label(photos[0]["sha"], "tomato__late_blight", background="natural")
    bob.label(photos[0]["sha"], "not_a_leaf")
    alice.label(photos[1]["sha"], "potato__early_blight")
    bob.label(photos[1]["sha"], "potato__early_blight")  # agreement is not listed
    html = bob.get("/label/disagreements").text
    assert _ids_in_queue(html) == [photos[0]["sha"]]
    said = re.findall(r"<tr><td>(\w+)</td><td>([^<]+)</td><td>([^<]+)</td><td>(\d{4}-[^<]+Z)</td></tr>", html)
    assert [(who, what, where) for who, what, where, _ in said] == [
        ("alice", "Tomato: Late blight", "On the plant"),
        ("bob", "Not a leaf", "not said"),
    ]
    assert Browser(server.url).get("/label/disagreements").status == 303


def test_pages_escape_what_devices_send_and_carry_a_strict_policy(base, dsn: str) -> None:
    server, tokens, _ = base
    add_field_photo(server, dsn, tokens["pi-02"], "pi-02", 6, condition="<img src=x onerror=alert(1)>",
                    crops=["<b>bold</b>"], top1_probability=0.01)  # fmt: skip
    alice = Browser(server.url)
    alice.login("alice")
    reply = alice.get("/label")
    assert "<img src=x" not in reply.text and "&lt;img src=x onerror=alert(1)&gt;" in reply.text
    assert "&lt;b&gt;bold&lt;/b&gt;" in reply.text
    policy = reply.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "form-action 'self'" in policy
    assert reply.headers["Cache-Control"] == "no-store"


def test_overview_and_csv_stay_public_and_link_to_the_labelling(base) -> None:
    server, _, _ = base
    status, _, body = call(server.url + "/")
    assert status == 200 and 'href="label">Label field photos (sign in)</a>' in body.decode()
    assert call(server.url + "/diagnoses.csv")[0] == 200
    assert call(server.url + "/", b"x", method="POST")[0] == 405  # still read-only


# ---------------------------------------------------------------- accounts, passwords, CLI


def test_account_cli_adds_lists_and_refuses_short_or_duplicate(dsn: str, capsys, monkeypatch) -> None:
    import io

    from leaf_collector.cli import main
    from leaf_collector.db import connect

    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["account", "add", "carol", "--password-stdin", "--dsn", dsn]) == 2
    assert "at least 12 are needed" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough passphrase\n"))
    assert main(["account", "add", "carol", "--password-stdin", "--dsn", dsn]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough passphrase\n"))
    assert main(["account", "add", "carol", "--password-stdin", "--dsn", dsn]) == 2
    assert "exists already" in capsys.readouterr().err
    assert main(["account", "add", "Bad Name", "--password-stdin", "--dsn", dsn]) == 2
    assert "must be 1-64 characters" in capsys.readouterr().err
    with connect(dsn) as conn:
        stored = conn.execute("SELECT password_hash FROM accounts WHERE username = 'carol'").fetchone()[0]
    assert stored.startswith("scrypt$16384$8$1$") and "passphrase" not in stored
    assert passwords.verify(stored, "a long enough passphrase")
    assert not passwords.verify(stored, "a long enough passphrasE")
    assert main(["account", "list", "--dsn", dsn]) == 0
    assert re.search(r"carol\s+enabled", capsys.readouterr().out)


def test_a_new_password_ends_the_sessions_and_a_disabled_account_comes_back_only_with_a_new_one(
    base, dsn: str, capsys, monkeypatch
) -> None:
    import io

    from leaf_collector.cli import main

    server, _, photos = base

    def account(action: str, name: str, password: str | None = None) -> int:
        if password is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
        return main(["account", action, name, *(["--password-stdin"] if password is not None else []), "--dsn", dsn])

    alice = Browser(server.url)
    assert alice.login("alice").status == 303
    assert account("password", "alice", "short") == 2 and "at least 12" in capsys.readouterr().err
    assert alice.get("/label").status == 200  # a refused change changes nothing
    assert account("password", "alice", "a brand new passphrase") == 0
    assert "its sessions ended" in capsys.readouterr().out
    assert alice.get("/label").status == 303  # the old session is gone
    assert Browser(server.url).login("alice").status == 401  # the old password no longer signs in
    assert alice.login("alice", "a brand new passphrase").status == 303
    assert alice.label(photos[0]["sha"], "unusable").status == 303

    assert account("enable", "alice", "another long passphrase") == 1  # enabled already
    assert "not a disabled account" in capsys.readouterr().err
    assert account("disable", "alice") == 0
    assert account("password", "alice", "a third long passphrase") == 1  # disabled: enable is the way back
    assert "account enable" in capsys.readouterr().err
    assert Browser(server.url).login("alice", "a brand new passphrase").status == 401
    assert account("enable", "alice", "another long passphrase") == 0
    assert "its labels are as they were" in capsys.readouterr().out
    assert Browser(server.url).login("alice", "a brand new passphrase").status == 401  # not the old one
    assert Browser(server.url).login("alice", "another long passphrase").status == 303
    assert labels(dsn) == [(photos[0]["sha"], "alice", "unusable")]
    assert account("password", "nobody", "a long enough passphrase") == 1


def test_password_hashes_are_salted_and_an_unknown_user_never_verifies() -> None:
    one, two = passwords.hash_password(PASSWORD), passwords.hash_password(PASSWORD)
    assert one != two and all(passwords.verify(h, PASSWORD) for h in (one, two))
    _, n, r, p, salt, key = one.split("$")
    assert (n, r, p, len(base64.b64decode(salt)), len(base64.b64decode(key))) == ("16384", "8", "1", 16, 32)
    assert not passwords.verify(None, PASSWORD)
    assert not passwords.verify("scrypt$broken", PASSWORD)
