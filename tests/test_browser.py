"""Headless Chromium (Debian's chromium + chromium-driver) on the directory listing.

Required, not optional: ``./test.sh`` installs both packages when missing (as root), and the
test fails rather than skips without them.  The screenshot of the listing is written to
``tests/artifacts/listing.png`` (ignored by git) for a person to look at.
"""

from __future__ import annotations

from pathlib import Path

from blackbox import running_server
from chromium import chromium as headless_chromium
from selenium import webdriver
from selenium.webdriver.common.by import By

ARTIFACTS = Path(__file__).parent / "artifacts"


def chromium() -> webdriver.Chrome:
    return headless_chromium()


def test_browser_loads_listing_and_follows_a_link(tmp_path: Path) -> None:
    root = tmp_path / "site"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "read me.txt").write_text("found by clicking")
    (root / "<i>x&y.txt").write_text("escaped")
    with running_server("--directory", str(root), "--no-access-log") as server:
        browser = chromium()
        try:
            browser.set_page_load_timeout(20)
            browser.get(f"{server.url}/files/")
            assert browser.title == "Index of /"
            names = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "tbody a")]
            assert names == ["docs/", "<i>x&y.txt"]  # escaped, so shown as text
            ARTIFACTS.mkdir(exist_ok=True)
            assert browser.save_screenshot(str(ARTIFACTS / "listing.png"))
            browser.find_element(By.LINK_TEXT, "docs/").click()
            assert browser.current_url == f"{server.url}/files/docs/"
            browser.find_element(By.LINK_TEXT, "read me.txt").click()
            assert browser.current_url == f"{server.url}/files/docs/read%20me.txt"
            assert "found by clicking" in browser.page_source
        finally:
            browser.quit()
