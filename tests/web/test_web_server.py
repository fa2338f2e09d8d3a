"""The page's server over real HTTP on loopback, on a real simulated appliance; its config; the PIN rule."""

from __future__ import annotations

import http.client
import json
import socket
import uuid
from pathlib import Path

import pytest

from appliance.config import config_check
from appliance.errors import ApplianceError
from appliance.web.server import WebPage, may_press
from appliance.web.watch import WatchedDisplay, WatchedLeds
from appliance.wiring import web_url
from tests.helpers.daemon import Running, simulated_config, wait_for


def request(url: str, method: str = "GET", path: str = "/", body: bytes | None = None, headers=None):
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


def press(url: str, kind: bytes = b"short", **headers: str):
    return request(url, "POST", "/press", kind, {"X-Leaf-Press": "1", **headers})


@pytest.fixture
def running(tmp_path: Path):
    cfg = simulated_config(tmp_path, web="enabled = true\nlisten = '127.0.0.1:0'")
    with Running(cfg) as app:
        yield app, web_url(app)


def test_a_press_through_the_page_diagnoses_and_the_record_is_in_the_store_and_on_the_page(running) -> None:
    app, url = running
    status, kind, page = request(url)
    assert status == 200 and kind.startswith("text/html") and b"press-short" in page
    assert press(url)[0] == 202
    wait_for(lambda: app.store.count() == 1 and app.state.value != "capturing")
    record = app.store.recent(1)[0]
    wait_for(lambda: json.loads(request(url, path="/state.json")[2])["records"])
    state = json.loads(request(url, path="/state.json")[2])
    assert state["records"][0]["id"] == record["id"]
    assert state["records"][0]["crop"] == record["crop"] and state["records"][0]["photo"] is True
    assert state["can_press"] is True
    status, kind, photo = request(url, path=f"/photo/{record['id']}.jpg")
    assert status == 200 and kind == "image/jpeg"
    assert photo == app.store.photo_file(record).read_bytes()
    status, kind, png = request(url, path="/screen.png")
    assert status == 200 and png.startswith(b"\x89PNG")


def test_photo_ids_are_validated_strictly(running) -> None:
    _, url = running
    for path in (
        "/photo/../diagnoses.sqlite3",
        "/photo/..%2f..%2fetc%2fpasswd.jpg",
        "/photo/not-a-uuid.jpg",
        f"/photo/{str(uuid.uuid4()).upper()}.jpg",
        f"/photo/{uuid.uuid4()}.jpg",  # well formed, no such record
        f"/photo/{uuid.uuid4()}.jpg/x",
    ):
        status, kind, _ = request(url, path=path)
        assert status == 404, path
        assert kind.startswith("application/json")


def test_presses_need_the_page_header_a_same_origin_and_a_known_kind(running) -> None:
    app, url = running
    assert request(url, "POST", "/press", b"short")[0] == 403  # a cross-site form cannot add the header
    assert press(url, Origin="http://evil.example")[0] == 403
    assert press(url, b"sideways")[0] == 400
    big = request(url, "POST", "/press", b"x" * 1000, {"X-Leaf-Press": "1"})
    assert big[0] == 413
    assert app.store.count() == 0 and app.cycles == 0


def test_the_pin_rule() -> None:
    assert may_press("127.0.0.1", "", None) and may_press("::1", "", None)
    assert not may_press("192.168.1.20", "", None)  # no PIN configured: other machines only watch
    assert not may_press("192.168.1.20", "", "")
    assert not may_press("192.168.1.20", "4711", None)
    assert not may_press("192.168.1.20", "4711", "4712")
    assert may_press("192.168.1.20", "4711", "4711")


def _own_address() -> str | None:
    """A non-loopback address of this machine (no packet is sent), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_from_another_address_the_page_is_read_only_unless_the_pin_is_given(tmp_path: Path) -> None:
    address = _own_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to call itself from")
    cfg = simulated_config(tmp_path, web="enabled = true\nlisten = '0.0.0.0:0'\npin = '4711'")
    with Running(cfg) as app:
        port = web_url(app).rsplit(":", 1)[1].rstrip("/")
        url = f"http://{address}:{port}/"
        assert json.loads(request(url, path="/state.json")[2])["can_press"] is False
        assert press(url)[0] == 403
        assert press(url, **{"X-Leaf-Pin": "0000"})[0] == 403
        assert app.cycles == 0
        assert json.loads(request(url, path="/state.json", headers={"X-Leaf-Pin": "4711"})[2])["can_press"]
        assert press(url, **{"X-Leaf-Pin": "4711"})[0] == 202
        wait_for(lambda: app.cycles == 1)
        for guess in ("0001", "0002", "0003", "0004"):  # with the one above: five wrong PINs
            assert press(url, **{"X-Leaf-Pin": guess})[0] == 403
        assert press(url, **{"X-Leaf-Pin": "4711"})[0] == 403  # guessing pauses presses from other machines
        assert app.cycles == 1
        assert press(url.replace(address, "127.0.0.1"))[0] in (202, 409)  # this machine still may


def test_a_port_in_use_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        display = WatchedDisplay(object())  # never shown: the bind fails first
        with pytest.raises(ApplianceError, match=r"\[web\] listen"):
            WebPage(f"127.0.0.1:{port}", "", display, WatchedLeds(object()))


def _check(tmp_path: Path, body: str, simulate: bool = False) -> list[str]:
    path = tmp_path / "config.toml"
    path.write_text(f"[device]\ndata_dir = '{tmp_path / 'data'}'\n[web]\n{body}\n")
    return config_check(path, simulate=simulate)


def test_web_config_keys_are_checked(tmp_path: Path) -> None:
    assert _check(tmp_path, "enabled = true\nlisten = '0.0.0.0:8080'\npin = '123456'") == []
    (problem,) = _check(tmp_path, "port = 8080")
    assert "web.port" in problem
    assert "web.listen" in _check(tmp_path, "listen = 'localhost:80'")[0]
    assert "web.listen" in _check(tmp_path, "listen = '127.0.0.1:70000'")[0]
    assert "web.pin" in _check(tmp_path, "pin = '12'")[0]


def test_the_simulation_turns_the_page_on_unless_the_file_says_otherwise(tmp_path: Path) -> None:
    from appliance.config import load_config

    path = tmp_path / "config.toml"
    path.write_text(f"[device]\ndata_dir = '{tmp_path / 'data'}'\n")
    assert load_config(path).web.enabled is False  # on a Pi: off by default
    assert load_config(path, simulate=True).web.enabled is True
    path.write_text(f"[device]\ndata_dir = '{tmp_path / 'data'}'\n[web]\nenabled = false\n")
    assert load_config(path, simulate=True).web.enabled is False
