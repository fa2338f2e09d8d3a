"""Labelling in a real headless Chromium: sign in, confirm one photo, correct another, a second
person disagrees, the disagreements page shows both. No JavaScript on the pages: plain forms.

With LEAF_SCREENSHOTS=FOLDER the sign-in form, the queue and the disagreements page are saved
there as PNG for the docs.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from tests.helpers.browser import headless_chromium
from tests.helpers.browser import submit as _submit
from tests.helpers.collector import in_process_collector, issue_token
from tests.helpers.labelling import add_account, add_field_photo, backgrounds, labels


@pytest.fixture
def driver(tmp_path: Path):
    with headless_chromium(tmp_path / "profile") as driver:
        driver.set_window_size(1280, 1100)
        yield driver


def _shot(driver, name: str) -> None:
    folder = os.environ.get("LEAF_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def _sign_in(driver, url: str, username: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url + "/")
    _submit(driver, driver.find_element(By.ID, "label-link"))  # the overview's link; /label sends a stranger to /login
    assert driver.current_url.endswith("/login")
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys("correct horse battery")
    _shot(driver, "label-login")
    _submit(driver, driver.find_element(By.CSS_SELECTOR, "#login button[type=submit]"))
    assert driver.current_url.endswith("/label")
    assert driver.find_element(By.ID, "user").text == username


def _photos_loaded(driver, expected: int) -> bool:
    """True once `expected` photos have decoded (a loaded machine may still be fetching some; waits up to 15 s)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    def count(d) -> int:
        return d.execute_script(
            "return Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length"
        )

    with contextlib.suppress(TimeoutException):  # the count below says what was missing
        WebDriverWait(driver, 15).until(lambda d: count(d) >= expected)
    return count(driver) == expected


def test_two_people_label_in_chromium_and_their_disagreement_shows(driver, dsn: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    server = in_process_collector(dsn)
    try:
        token = issue_token(dsn, "pi-north")
        sure = add_field_photo(
            server, dsn, token, "pi-north", 0, top1_slug="tomato__late_blight", top1_probability=0.62
        )
        unsure = add_field_photo(
            server,
            dsn,
            token,
            "pi-north",
            1,
            verdict="unknown",
            reason="unknown_condition",
            crop="Potato",
            condition="",
            top1_slug="potato__early_blight",
            top1_probability=0.41,
            crops=["Potato", "Tomato"],
            topk=[
                {"slug": "potato__early_blight", "probability": 0.41},
                {"slug": "potato__late_blight", "probability": 0.35},
            ],
        )
        add_field_photo(
            server,
            dsn,
            token,
            "pi-north",
            2,
            top1_slug="tomato__healthy",
            crop="Tomato",
            condition="Healthy",
            top1_probability=0.97,
        )
        add_account(dsn, "alice")
        add_account(dsn, "bob")

        _sign_in(driver, server.url, "alice")
        sections = driver.find_elements(By.CSS_SELECTOR, "section.photo")
        assert [s.get_attribute("id") for s in sections][:2] == [f"photo-{unsure['sha']}", f"photo-{sure['sha']}"]
        assert _photos_loaded(driver, 3)  # full photos decode: the session cookie goes with them
        _shot(driver, "label-queue")

        first = driver.find_element(By.ID, f"photo-{sure['sha']}")
        first.find_element(By.CSS_SELECTOR, "input[name=background][value=plain]").click()  # a picked leaf
        _submit(driver, first.find_element(By.CSS_SELECTOR, "button.confirm"))  # "Confirm: Tomato: Late blight"
        assert driver.current_url.endswith("/label")
        assert not driver.find_elements(By.ID, f"photo-{sure['sha']}")

        second = driver.find_element(By.ID, f"photo-{unsure['sha']}")
        save = second.find_element(By.CSS_SELECTOR, "button.choose")
        save.click()  # nothing chosen yet: the browser keeps the form (the select is required) and nothing is stored
        assert labels(dsn) == [(sure["sha"], "alice", "tomato__late_blight")]
        Select(second.find_element(By.CSS_SELECTOR, "form.label select")).select_by_visible_text("Potato: Late blight")
        second.find_element(By.CSS_SELECTOR, "input[name=background][value=plain]").click()
        _submit(driver, save)
        assert len(driver.find_elements(By.CSS_SELECTOR, "section.photo")) == 1
        _submit(driver, driver.find_element(By.ID, "logout"))
        assert driver.current_url.endswith("/login")

        _sign_in(driver, server.url, "bob")
        again = driver.find_element(By.ID, f"photo-{sure['sha']}")
        assert "Second opinion" in again.text
        _submit(driver, again.find_element(By.XPATH, ".//button[@value='not_a_leaf']"))
        _submit(driver, driver.find_element(By.LINK_TEXT, "Disagreements"))
        rows = [r.text for r in driver.find_elements(By.CSS_SELECTOR, f"#photo-{sure['sha']} table.said tbody tr")]
        assert len(rows) == 2
        assert rows[0].startswith("alice Tomato: Late blight Picked: on paper, cloth or a table 20")
        assert rows[1].startswith("bob Not a leaf not said 20")
        assert len(driver.find_elements(By.CSS_SELECTOR, "section.photo")) == 1 and _photos_loaded(driver, 1)
        _shot(driver, "label-disagreements")
        assert labels(dsn) == sorted(
            [
                (sure["sha"], "alice", "tomato__late_blight"),
                (sure["sha"], "bob", "not_a_leaf"),
                (unsure["sha"], "alice", "potato__late_blight"),
            ]
        )
        assert backgrounds(dsn) == sorted(
            [(sure["sha"], "alice", "plain"), (sure["sha"], "bob", None), (unsure["sha"], "alice", "plain")]
        )
        print("\nBROWSER chromium labelling: 2 accounts, 3 labels with 2 backgrounds, 1 disagreement shown")
    finally:
        server.close()
