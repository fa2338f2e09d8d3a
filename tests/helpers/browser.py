"""A real headless Chromium (Debian's chromium + chromedriver, driven by selenium) for page tests.

Skips when the browser or selenium is missing, unless LEAF_REQUIRE_BROWSER=1 or CI=true: then it
fails, because the gate must really have looked at the page.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def require_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if importlib.util.find_spec("selenium") is None:
        missing.append("selenium (pip)")
    if not missing:
        return
    install = "apt-get install chromium chromium-driver; pip install selenium"
    reason = f"browser check needs {', '.join(missing)} ({install})"
    if os.environ.get("LEAF_REQUIRE_BROWSER") == "1" or os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@contextmanager
def headless_chromium(profile: Path, downloads: Path | None = None) -> Iterator[Any]:
    """A driver on a fresh profile; with `downloads`, files the page offers land there unasked."""
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
    ):  # fmt: skip
        options.add_argument(flag)
    if downloads is not None:
        options.add_experimental_option(
            "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
        )
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    if downloads is not None:
        driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def submit(driver: Any, button: Any) -> None:
    """Click a form's button, then wait for the next page to replace this one and finish loading.

    Waiting only for the old page to go left a half-loaded next page, whose nodes then vanished
    under the test (CI met it).
    """
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = driver.find_element(By.TAG_NAME, "html")
    button.click()
    wait = WebDriverWait(driver, 20)
    wait.until(lambda d: _gone(page))
    wait.until(lambda d: d.execute_script("return document.readyState") == "complete")


def _gone(element: Any) -> bool:
    """The page holding `element` was replaced. Mid-navigation Chromium may answer "node does not
    belong to the document" instead of a stale reference (CI met it): that too means gone."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        if "does not belong to the document" in str(exc):
            return True
        raise
    return False
