"""The agronomist's page in a real headless Chromium (Debian's chromium + chromedriver, driven by selenium).

Skipped when the browser or selenium is missing, unless LEAF_REQUIRE_BROWSER=1 (the collector
gate sets it), then it fails: the gate must really have looked at the page.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from leaf_wire import protocol
from tests.helpers.browser import headless_chromium
from tests.helpers.collector import (
    PHOTOS,
    in_process_collector,
    issue_token,
)


@pytest.fixture
def browser(tmp_path: Path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with headless_chromium(tmp_path / "profile", downloads) as driver:
        yield driver, downloads


def _seed(url: str, token: str, device_id: str, count: int) -> list[dict]:
    crops = [("Tomato", "Late blight"), ("Potato", "Early blight"), ("Maïs", "Rouille commune")]
    records = []
    for n in range(count):
        crop, condition = crops[n % len(crops)]
        records.append(
            {
                "id": str(uuid.uuid4()),
                "created_at": f"2025-06-{1 + n % 3:02d}T08:{n:02d}:00.000Z",
                "device_id": device_id,
                "model_version": "leafnet-1",
                "model_sha256": "ab" * 32,
                "verdict": "diagnosis",
                "reason": None,
                "top1_slug": "x",
                "top1_probability": 0.8,
                "crop": crop,
                "condition": condition,
                "topk": [],
                "quality": {},
                "latency": {},
                "photo_sha256": "",
                "photo_bytes": None,
                "thumbnail_jpeg_b64": base64.b64encode(PHOTOS[n % len(PHOTOS)]).decode(),
            }
        )
    request = urllib.request.Request(
        url + protocol.API_PATH,
        data=json.dumps(protocol.batch(records)).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    return records


def test_page_loads_shows_the_counts_and_the_csv_downloads(browser, dsn: str) -> None:
    from selenium.webdriver.common.by import By

    driver, downloads = browser
    server = in_process_collector(dsn)
    try:
        seeded = _seed(server.url, issue_token(dsn, "pi-north"), "pi-north", 7)
        seeded += _seed(server.url, issue_token(dsn, "pi-south"), "pi-south", 5)
        driver.get(server.url + "/?days=100000")
        assert driver.title == "Leaf diagnoses – fleet"
        assert driver.find_element(By.CSS_SELECTOR, "#total-diagnoses b").text == "12"
        assert driver.find_element(By.CSS_SELECTOR, "#total-devices b").text == "2"
        by_crop = {
            row.find_elements(By.TAG_NAME, "td")[0].text: row.find_elements(By.TAG_NAME, "td")[1].text
            for row in driver.find_elements(By.CSS_SELECTOR, "#by-crop tbody tr")
        }
        assert by_crop == {"Tomato": "5", "Potato": "4", "Maïs": "3"}
        devices = [r.text for r in driver.find_elements(By.CSS_SELECTOR, "#by-device tbody tr td:first-child")]
        assert devices == ["pi-north", "pi-south"]
        days = driver.find_elements(By.CSS_SELECTOR, "#by-day tbody tr")
        assert len(days) == 3
        thumbs = driver.find_elements(By.CSS_SELECTOR, "#latest img.thumb")
        assert len(thumbs) == 12
        from selenium.webdriver.support.ui import WebDriverWait

        def loaded(driver) -> int:  # thumbnails load lazily: scroll each into view first
            for thumb in thumbs:
                driver.execute_script("arguments[0].scrollIntoView()", thumb)
            return driver.execute_script(
                "return Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length"
            )

        WebDriverWait(driver, 10).until(lambda d: loaded(d) == 12)  # they decode in the browser (CSP allows them)

        driver.find_element(By.ID, "csv").click()
        csv_file = _wait_for_download(downloads)
        raw = csv_file.read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf")
        rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
        assert len(rows) == 12
        assert {r["id"] for r in rows} == {r["id"] for r in seeded}
        assert {r["crop"] for r in rows} == {"Tomato", "Potato", "Maïs"}
        assert all(r["created_at"].endswith("Z") and r["has_thumbnail"] == "true" for r in rows)
        print(f"\nBROWSER chromium page: 12 records, 2 devices, 12 thumbnails; CSV {csv_file.name}: {len(rows)} rows")
    finally:
        server.close()


def _wait_for_download(folder: Path) -> Path:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done = [p for p in folder.iterdir() if p.suffix == ".csv"]
        if done and not any(p.suffix == ".crdownload" for p in folder.iterdir()):
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no CSV downloaded into {folder}: {list(folder.iterdir())}")
