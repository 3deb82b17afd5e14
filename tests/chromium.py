"""Headless Chromium for the browser tests (Debian's chromium and chromium-driver).

Required, not optional: ``./test.sh`` installs both packages when missing (as root), and a
test fails rather than skips without them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

__all__ = ["chromium"]

#: The flags a sandboxed root without a network needs (see .library/env).
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def chromium(
    *,
    window: tuple[int, int] = (1000, 700),
    profile: Path | None = None,
    page_load_timeout: float | None = None,
) -> webdriver.Chrome:
    """A new headless Chromium; *profile*: its own user-data directory."""
    binary = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    assert binary and driver, "chromium and chromium-driver are required: ./test.sh installs them"
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={window[0]},{window[1]}")
    if profile is not None:
        options.add_argument(f"--user-data-dir={profile}")
    browser = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    if page_load_timeout is not None:
        browser.set_page_load_timeout(page_load_timeout)
    return browser
