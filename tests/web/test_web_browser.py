"""The simulated appliance's page in a real headless Chromium: it loads, a click diagnoses, the page shows it."""

from __future__ import annotations

from pathlib import Path

from appliance.wiring import web_url
from tests.helpers.browser import headless_chromium
from tests.helpers.daemon import Running, simulated_config, wait_for


def test_a_click_on_the_page_diagnoses_and_the_page_and_store_show_it(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    cfg = simulated_config(tmp_path, web="enabled = true\nlisten = '127.0.0.1:0'")
    with headless_chromium(tmp_path / "profile") as driver, Running(cfg) as app:
        url = web_url(app)
        driver.get(url)
        assert driver.title == "Leaf appliance"
        wait_for(lambda: driver.find_element(By.ID, "state").text == "idle")
        wait_for(lambda: driver.execute_script("const i = document.getElementById('screen'); return i.naturalWidth"))
        assert driver.find_element(By.ID, "lamp-green").get_attribute("class").split() == ["lamp", "green", "on"]
        assert driver.find_element(By.ID, "result").text == "none yet"

        driver.find_element(By.ID, "press-short").click()
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#history tr"))
        row = driver.find_element(By.CSS_SELECTOR, "#history tr")
        stored = app.store.recent(5)
        assert len(stored) == 1
        record = stored[0]
        assert row.get_attribute("data-id") == record["id"]
        cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
        assert cells[2:5] == [record["crop"], record["condition"], record["verdict"]]
        assert record["crop"] and record["crop"] in driver.find_element(By.ID, "result").text
        wait_for(
            lambda: driver.execute_script(
                "const i = document.querySelector('#history img'); return i && i.complete && i.naturalWidth > 0"
            )
        )  # the stored photo really decodes in the browser (the CSP allows it)
        print(f"\nBROWSER chromium: press -> {record['crop']} {record['condition']} ({record['id']})")
